"""Importers that turn a user's files into a study folder (manifest + catalogue + images).

Three sources are supported:

* **Folder convention** (``import_folder``)::

      <source>/clinical.csv                         optional clinical table
      <source>/<patient>/<timepoint>/<image key>.<ext>
      <source>/<patient>/<timepoint>/seg/<reader>__<method>[__<reference key>].<ext>

  ``<timepoint>`` is pre, c2, c4 or post; ``<image key>`` is a role (dce_pre, dce_early,
  dce_late, sub, t2w, adc, us_bmode), ``dwi_b<value>`` or ``mg_cc_<L|R>`` / ``mg_mlo_<L|R>``;
  ``<ext>`` is .nii, .nii.gz, .nrrd, .mha (or .mhd).  A segmentation's reference defaults to
  dce_early for MR (the grid readers draw on).
* **Manifest** (``import_manifest``): a manifest.csv written by hand (see manifest.py), paths
  relative to the CSV and inside its folder.  Any NIfTI/NRRD/MHA file can be listed.
* **DICOM folders** (``import_dicom``, see dicom_import.py).

Files are copied into ``<study>/images/<patient>/<timepoint>/`` so the study folder is
self-contained; nothing in the source is modified.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..imageio import IMAGE_SUFFIXES, has_image_suffix
from ..paths import within
from .manifest import CLINICAL_NAME, read_clinical, read_manifest_rows, validate_manifest_rows
from .model import ROLES, TIMEPOINTS
from .store import StudyStore

_KEY = re.compile(r"^(?P<role>[a-z0-9_]+?)(?:_b(?P<b>\d+))?(?:_(?P<lat>[LR]))?$")


def split_suffix(name: str) -> tuple[str, str]:
    for suffix in (".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)], suffix
    return Path(name).stem, Path(name).suffix


def parse_image_key(stem: str, where: str) -> dict[str, Any]:
    """``dwi_b800`` -> role dwi, b 800; ``mg_cc_L`` -> role mg_cc, laterality L."""
    m = _KEY.match(stem)
    role = m.group("role") if m else None
    if not m or role not in ROLES:
        raise InputError(f"{where}: cannot tell the image role from the file name {stem!r}; "
                         f"expected one of {sorted(ROLES)} (dwi as dwi_b<value>, mammograms as mg_cc_L etc.)")
    if role == "dwi" and m.group("b") is None:
        raise InputError(f"{where}: a DWI file name needs its b-value, e.g. dwi_b800")
    if role.startswith("mg_") and m.group("lat") is None:
        raise InputError(f"{where}: a mammogram file name needs its laterality, e.g. {role}_L")
    return {"role": role, "modality": ROLES[role][0], "b_value": float(m.group("b")) if m.group("b") else None,
            "laterality": m.group("lat")}


def scan_folder(source: str | Path) -> list[dict[str, Any]]:
    """Manifest rows (with absolute paths) for a folder in the convention above."""
    source = Path(source)
    if not source.is_dir():
        raise InputError(f"{source}: not a folder")
    rows: list[dict[str, Any]] = []
    for patient_dir in sorted(p for p in source.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for tp_dir in sorted(p for p in patient_dir.iterdir() if p.is_dir()):
            if tp_dir.name not in TIMEPOINTS:
                raise InputError(f"{tp_dir}: unknown timepoint folder {tp_dir.name!r}; use one of {list(TIMEPOINTS)}")
            base = {"patient_id": patient_dir.name, "timepoint": tp_dir.name}
            for f in sorted(tp_dir.iterdir()):
                if f.is_file() and has_image_suffix(f) and not f.name.endswith(".raw"):
                    stem, _ = split_suffix(f.name)
                    rows.append({**base, "kind": "image", "path": str(f), **parse_image_key(stem, str(f))})
            seg_dir = tp_dir / "seg"
            if seg_dir.is_dir():
                for f in sorted(seg_dir.iterdir()):
                    if f.is_file() and has_image_suffix(f):
                        rows.append({**base, "kind": "segmentation", "path": str(f), **_parse_seg_name(f)})
    if not rows:
        raise InputError(f"{source}: no images found (expected <patient>/<timepoint>/<role>.nii.gz; see README)")
    return rows


def _parse_seg_name(path: Path) -> dict[str, Any]:
    stem, _ = split_suffix(path.name)
    parts = stem.split("__")
    if len(parts) not in (1, 2, 3) or not parts[0]:
        raise InputError(f"{path}: segmentation names are <reader>__<method>[__<reference key>]")
    method = parts[1] if len(parts) > 1 else "manual"
    if method not in ("manual", "monai", "ftv", "consensus", "reference"):
        raise InputError(f"{path}: unknown segmentation method {method!r}")
    reference = parts[2] if len(parts) > 2 else None
    return {"reader": parts[0], "method": method, "label": 1, "reference": reference}


def _default_references(rows: list[dict[str, Any]]) -> None:
    """A segmentation without an explicit reference shares the grid of dce_early (or the only image)."""
    images: dict[tuple[str, str], list[str]] = {}
    for r in rows:
        if r["kind"] == "image":
            from .model import image_key

            images.setdefault((r["patient_id"], r["timepoint"]), []).append(
                image_key(r["role"], r.get("b_value"), r.get("laterality")))
    for r in rows:
        if r["kind"] == "segmentation" and not r.get("reference"):
            keys = images.get((r["patient_id"], r["timepoint"]), [])
            r["reference"] = "dce_early" if "dce_early" in keys or not keys else keys[0]


def materialise(rows: list[dict[str, Any]], dest: str | Path, clinical: dict | None = None,
                copy: bool = True) -> StudyStore:
    """Copy the listed files into ``dest/images`` and create the study (manifest paths relative)."""
    dest = Path(dest)
    if (dest / "manifest.csv").exists():
        raise InputError(f"{dest}: already holds a study; import into a new folder")
    validate_manifest_rows(rows, "import")  # ids become folder names: check them before copying anything
    _default_references(rows)
    out_rows = []
    for r in rows:
        src = Path(r["path"])
        if not src.is_file():
            raise InputError(f"{src}: listed for {r['patient_id']}/{r['timepoint']} but not found")
        if copy:
            sub = "seg/" if r["kind"] == "segmentation" else ""
            rel = Path("images") / r["patient_id"] / r["timepoint"] / f"{sub}{src.name}"
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.exists():
                raise InputError(f"{src}: two files would be stored as {rel}")
            shutil.copy2(src, target)
            for companion in _companions(src):
                shutil.copy2(companion, target.parent / companion.name)
            out_rows.append({**r, "path": rel.as_posix()})
        else:
            out_rows.append({**r, "path": str(src.resolve())})
    store = StudyStore.create(dest, out_rows, clinical)
    store.audit("import", details={"files": len(out_rows), "copied": copy})
    return store


def _companions(path: Path) -> list[Path]:
    """Detached-header formats keep their data file next to the header (.mhd/.raw, .nhdr/.raw).

    The data file must be in the header's own folder (it is copied beside the header, and a
    header naming ``../../etc/passwd`` must not bring that file into the study).
    """
    if path.suffix.lower() not in (".mhd", ".nhdr"):
        return []
    text = path.read_text(errors="ignore")
    m = re.search(r"(?:ElementDataFile|data file|datafile)\s*[=:]\s*(\S+)", text)
    if not m or m.group(1).upper() == "LOCAL":
        return []
    data = path.parent / m.group(1)
    if data.resolve().parent != path.resolve().parent:
        raise InputError(f"{path}: its data file {m.group(1)!r} is not in the header's folder; refused "
                         "(keep the .raw next to its header)")
    return [data] if data.is_file() else []


def import_folder(source: str | Path, dest: str | Path, copy: bool = True) -> StudyStore:
    """Import a folder in the documented convention (with ``clinical.csv`` if present)."""
    source = Path(source)
    rows = scan_folder(source)
    clinical = read_clinical(source / CLINICAL_NAME) if (source / CLINICAL_NAME).is_file() else None
    return materialise(rows, dest, clinical, copy)


def import_manifest(manifest: str | Path, dest: str | Path, clinical: str | Path | None = None,
                    copy: bool = True) -> StudyStore:
    """Import the files listed in a hand-written manifest.csv (paths relative to it)."""
    manifest = Path(manifest)
    rows = read_manifest_rows(manifest)
    for i, r in enumerate(rows, start=2):
        p = manifest.parent / r["path"]  # an absolute path replaces the folder
        if not has_image_suffix(p):
            raise InputError(f"{manifest}:{i}: {r['path']!r} is not an image file (use one of {IMAGE_SUFFIXES})")
        if not within(manifest.parent, p):
            raise InputError(f"{manifest}:{i}: {r['path']!r} lies outside the manifest's folder {manifest.parent}; "
                             "list files below it")
        r["path"] = str(p)
    if clinical is None and (manifest.parent / CLINICAL_NAME).is_file():
        clinical = manifest.parent / CLINICAL_NAME
    return materialise(rows, dest, read_clinical(clinical) if clinical else None, copy)
