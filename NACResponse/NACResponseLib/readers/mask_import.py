"""Delineations made elsewhere -> a reader's session result: NIfTI/NRRD/MHA, ITK-SNAP labels, DICOM SEG.

Files are read as a binary mask on the session's reference grid and saved as a new version of
the reader's mask (audit source ``import:<file>``).  NIfTI/NRRD/MHA masks must share the grid
(or are resampled, nearest neighbour, on request); a label is chosen by value or by name from an
ITK-SNAP label description file.  DICOM SEG goes through highdicom (``study/dicom_seg.py``): the
SEG must reference a series of the case, and its frames must lie on the reference grid.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import GeometryMismatchError, InputError
from .sessions import ReaderSession, split_case


def read_itksnap_labels(path: str | Path) -> dict[int, str]:
    """ITK-SNAP label description file -> {label value: name}."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: label description file not found")
    labels: dict[int, str] = {}
    for lineno, line in enumerate(path.read_text(errors="replace").splitlines(), start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        try:
            parts = shlex.split(text)
            labels[int(parts[0])] = parts[7] if len(parts) >= 8 else parts[-1]
        except (ValueError, IndexError):
            raise InputError(f"{path}:{lineno}: not an ITK-SNAP label line (IDX R G B A VIS MSH \"LABEL\")") from None
    if not labels:
        raise InputError(f"{path}: no labels found (is this an ITK-SNAP label description file?)")
    return labels


def label_by_name(labels: dict[int, str], name: str, where: str) -> int:
    matches = [v for v, n in labels.items() if n.strip().lower() == name.strip().lower()]
    if not matches:
        raise InputError(f"{where}: no label named {name!r} (labels: {labels})")
    return matches[0]


def read_dicom_seg(path: str | Path, reference, *, segment: int | str | None = None):
    """One segment of a DICOM SEG (by number, label or reader; default the only one) on ``reference``'s grid."""
    from ..study.dicom_seg import choose_segment, read_seg, read_segments, segment_mask

    seg = read_seg(path)
    info = choose_segment(read_segments(seg), segment, str(path))
    return segment_mask(seg, info.number, reference, f"{path} segment {info.number} ({info.label})")


def check_seg_references(session: ReaderSession, cid: str, path: str | Path) -> None:
    """A SEG must be drawn on one of the case's series: name the referenced UID when it is not."""
    from ..study.dicom_seg import find_series, read_seg, referenced_series

    pid, tp = split_case(cid)
    uids = referenced_series(read_seg(path))
    own = {i.series_uid for i in session.store.cohort[pid].timepoint(tp).images if i.series_uid}
    if not own & set(uids):
        other_pid, other_tp, image = find_series(session.store, uids, str(path))  # raises for UIDs not in the study
        raise InputError(f"{path}: references series {image.series_uid} of {other_pid}/{other_tp} "
                         f"({image.key}), not a series of {cid}")


def load_segmentation_file(path: str | Path, reference, *, label: int | None = None, label_name: str | None = None,
                           label_file: str | Path | None = None, resample: bool = False):
    """Read a mask made elsewhere (NIfTI/NRRD/MHA or DICOM SEG) as a binary mask on the reference grid."""
    import SimpleITK as sitk

    from ..geometry import Geometry, geometry_differences
    from ..imageio import read_image

    path = Path(path)
    if is_dicom_file(path):
        return read_dicom_seg(path, reference, segment=label_name or label)
    image = read_image(path)
    if label_name is not None:
        if label_file is None:
            raise InputError(f"{path}: --label-name needs an ITK-SNAP label description file (--label-file)")
        label = label_by_name(read_itksnap_labels(label_file), label_name, str(label_file))
    array = sitk.GetArrayViewFromImage(image)
    present = np.unique(array[array != 0])
    if present.size == 0:
        raise InputError(f"{path}: mask is empty (no non-zero voxel)")
    if label is None:
        if present.size > 1:
            raise InputError(f"{path}: several labels {present[:10].tolist()}; choose one (label / label name)")
        label = int(present[0])
    if label not in present:
        raise InputError(f"{path}: label {label} absent (labels present: {present[:10].tolist()})")
    binary = sitk.Cast(image == int(label), sitk.sitkUInt8)
    diffs = geometry_differences(Geometry.of(reference), Geometry.of(binary))
    if diffs:
        if not resample:
            raise GeometryMismatchError(f"{path}: grid differs from the reference image ({'; '.join(diffs)}); "
                                        "resample (nearest neighbour) with --resample if it covers the same anatomy")
        binary = sitk.Resample(binary, reference, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
        if not np.any(sitk.GetArrayViewFromImage(binary)):
            raise InputError(f"{path}: the mask lies outside the reference image after resampling")
    return binary


def is_dicom_file(path: Path) -> bool:
    if path.suffix.lower() == ".dcm":
        return True
    if not path.is_file():
        return False
    with open(path, "rb") as fh:
        head = fh.read(132)
    return len(head) == 132 and head[128:132] == b"DICM"


def import_segmentation(session: ReaderSession, reader: str, cid: str, path: str | Path, **options) -> Path:
    """Import one file as ``reader``'s segmentation of a case (a new version; audit source 'import')."""
    from ..imageio import read_image

    session._check_reader(reader)
    session._check_case(cid)
    pid, tp = split_case(cid)
    ref = session.store.path(session.store.cohort[pid].timepoint(tp).image(session.spec.reference).path)
    if is_dicom_file(Path(path)):
        check_seg_references(session, cid, path)
    mask = load_segmentation_file(path, read_image(ref), **options)
    return session.save(reader, cid, mask, source=f"import:{Path(path).name}")


def find_case_files(folder: str | Path, cases: Iterable[str]) -> dict[str, Path]:
    """Match files to cases: ``<patient>/<tp>/*`` folders or names starting ``<patient>_<tp>``/``<patient>__<tp>``."""
    from ..imageio import has_image_suffix

    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: folder not found")
    files = [p for p in sorted(folder.rglob("*")) if p.is_file() and (has_image_suffix(p) or is_dicom_file(p))]
    found: dict[str, Path] = {}
    for cid in cases:
        pid, tp = split_case(cid)
        hits = [p for p in files
                if p.relative_to(folder).parts[:2] == (pid, tp)
                or re.match(rf"^{re.escape(pid)}_{{1,2}}{re.escape(tp)}(?![A-Za-z0-9])", p.name)]
        if len(hits) > 1:
            raise InputError(f"{folder}: several files for {cid}: {[str(h) for h in hits[:4]]}")
        if hits:
            found[cid] = hits[0]
    return found


def import_folder(session: ReaderSession, reader: str, folder: str | Path, **options) -> dict[str, Any]:
    """Import every file of ``folder`` that matches a session case; per-file failures are recorded."""
    from ..errors import NACError

    done, failed = [], {}
    for cid, path in find_case_files(folder, session.spec.cases).items():
        try:
            import_segmentation(session, reader, cid, path, **options)
            done.append(cid)
        except NACError as exc:
            failed[cid] = str(exc)
    return {"imported": done, "failed": failed}
