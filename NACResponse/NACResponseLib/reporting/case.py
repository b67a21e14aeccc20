"""The per-case report: everything the study knows about one patient, gathered for a page a
clinician can forward to the tumour board.

This package sits above the domains because a case report reads all of them (segmentation
measurements, saved response models, DLR predictions and Grad-CAM maps, MC extents); it only
reads: the study's tables, model folders and image files are never written.  A part the study does
not have yet (no mammograms, no saved model, tables not computed) is stated with the command that
makes it; a part that fails to read (a corrupt file, a tampered model) is stated with its error and
counted in ``problems`` so the command exits 1 while the rest of the page is kept.

Sections (keys of :func:`gather_case`): ``patient``, ``images``, ``measurements``, ``models``,
``gradcam``, ``mammograms``, ``provenance``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..errors import InputError, NACError
from ..provenance import now_iso, package_versions, read_json, sha256_file
from ..study.model import METHOD_PRIORITY, TIMEPOINTS, timepoint_order

MEASUREMENTS_TABLE = "tumour_measurements"  # segmentation.cohort.MEASUREMENTS_TABLE
DLR_PREDICTIONS_TABLE = "dlr_predictions"  # deep.dlr_cohort.PREDICTIONS_TABLE
DLR_METADATA = Path("configs") / "metadata.json"  # segmentation.bundle.METADATA
MEASUREMENT_COLUMNS = ["timepoint", "volume_ml", "area_mm2", "longest_inplane_diameter_mm", "volume_change_pct",
                       "area_change_pct", "diameter_change_pct", "recist"]
RESMIN_COLUMNS = ["laterality", "pre_extent_mm", "post_extent_mm", "change_pct", "mc_category", "tumour_recist",
                  "resmin_flag", "statement"]


class _Sources:
    """What the page was made from: files (hashed), tables (their provenance) and problems."""

    def __init__(self, store):
        self.store = store
        self.files: dict[str, str] = {}
        self.tables: dict[str, dict[str, Any]] = {}
        self.problems: list[str] = []

    def file(self, rel: str | Path) -> Path:
        path = self.store.path(rel)
        self.files[os.path.relpath(path, self.store.root)] = sha256_file(path)
        return path

    def table(self, name: str):
        """The table's rows, or None when the study does not have it."""
        if not self.store.has_table(name):
            return None
        prov = self.store.table_provenance(name)
        self.tables[name] = {"step": prov.get("step"), "created": prov.get("created"),
                             "parameters_sha256": prov.get("parameters_sha256"),
                             "sha256": sha256_file(self.store.table_path(name))}
        return self.store.read_table(name)

    def failed(self, what: str, exc: Exception) -> str:
        text = f"{what}: {exc}"
        self.problems.append(text)
        return text


def find_patient(store, patient_id: str):
    cohort = store.cohort
    if patient_id in cohort.patients:
        return cohort[patient_id]
    ids = sorted(cohort.patients)
    shown = ", ".join(ids[:8]) + (f", ... ({len(ids)} in all)" if len(ids) > 8 else "")
    raise InputError(f"{store.root}: no patient {patient_id!r} in this study; its patients are {shown or 'none'} "
                     f"(column patient_id of {store.manifest_path.name}; 'nacresponse tables show STUDY "
                     f"{MEASUREMENTS_TABLE}' lists the measured ones)")


def _primary_series(rows) -> tuple[str, str] | None:
    """(reader, method) whose measurements lead: the first method of METHOD_PRIORITY, readers sorted."""
    if rows is None or not len(rows):
        return None
    pairs = sorted({(r, m) for r, m in zip(rows["reader"], rows["method"])},
                   key=lambda rm: (METHOD_PRIORITY.index(rm[1]) if rm[1] in METHOD_PRIORITY else 99, rm[0]))
    return pairs[0]


def _measurements(src: _Sources, patient_id: str) -> dict[str, Any]:
    table = src.table(MEASUREMENTS_TABLE)
    if table is None:
        return {"missing": "The tumour has not been measured yet (run 'nacresponse seg measure STUDY')."}
    rows = table[(table["patient_id"] == patient_id) & (table["status"] == "done")]
    if not len(rows):
        return {"missing": f"No segmentation of this patient was measured ({MEASUREMENTS_TABLE} has no row)."}
    series = []
    for (reader, method), grp in rows.groupby(["reader", "method"], sort=False):
        grp = grp.sort_values("timepoint", key=lambda s: s.map(timepoint_order))
        series.append({"reader": reader, "method": method, "rows": grp.reindex(columns=MEASUREMENT_COLUMNS).to_dict("records"),
                       "slices": dict(zip(grp["timepoint"], grp["diameter_slice"]))})
    primary = _primary_series(rows)
    series.sort(key=lambda s: (s["reader"], s["method"]) != primary)
    return {"series": series, "primary": primary}


def _leading(segs, primary):
    """Segmentations ordered: the measurements' leading series first, then METHOD_PRIORITY, reader."""
    def rank(seg):
        method = METHOD_PRIORITY.index(seg.method) if seg.method in METHOD_PRIORITY else len(METHOD_PRIORITY)
        return ((seg.reader, seg.method) != primary, method, seg.reader)
    return sorted(segs, key=rank)


def _slice_of(slices, seg, tp_name) -> int | None:
    index = slices.get((seg.reader, seg.method, tp_name))
    return None if index is None or str(index) == "<NA>" else int(index)


def _images(src: _Sources, patient, measurements: dict[str, Any]) -> dict[str, Any]:
    """One figure per image the delineations were drawn on (e.g. DCE early, B-mode), one panel per
    timepoint: the leading delineation's RECIST slice with every delineation of that image on it
    and the leading delineation's RECIST line (``recist``: the lines drawn, in each panel's mm frame)."""
    import SimpleITK as sitk

    from ..deep.slices import largest_slice_index
    from ..imageio import read_image
    from .figures import figure_rows, image_plane, mask_plane, recist_line, timepoint_figure

    primary = measurements.get("primary")
    slices = {(s["reader"], s["method"], tp): i for s in measurements.get("series", []) for tp, i in s["slices"].items()}
    keys = list(dict.fromkeys(seg.reference for tp in patient.ordered_timepoints() for seg in _leading(tp.segmentations, primary)))
    figures, notes, lines = [], [], []
    for key in keys:
        panels = []
        for tp in patient.ordered_timepoints():
            segs = _leading([s for s in tp.segmentations if s.reference == key], primary)
            if not segs:
                continue
            lead = segs[0]
            try:
                image = read_image(src.file(tp.image(key).path))
                masks = [read_image(src.file(seg.path)) for seg in segs]
                line = recist_line(masks[0], lead.label, f"{lead.reader} ({lead.method})")
                index = _slice_of(slices, lead, tp.name)
                if index is None and masks[0].GetDimension() == 3:
                    index = line.slice if line else largest_slice_index(sitk.GetArrayViewFromImage(masks[0]) == lead.label)
                if line is not None and line.slice is not None and line.slice != index:
                    notes.append(src.failed(f"{tp.name} {key} RECIST line", InputError(
                        f"{lead.path}: the longest diameter lies on slice {line.slice} but {MEASUREMENTS_TABLE} says "
                        f"slice {index}; the mask changed after it was measured (rerun 'nacresponse seg measure')")))
                    line = None
                outlines = [(f"{seg.reader} ({seg.method})", mask_plane(mask == seg.label, index))
                            for seg, mask in zip(segs, masks)]
                where = f", slice {index}" if image.GetDimension() == 3 else ""
                plane = image_plane(image, index, f"{TIMEPOINTS.get(tp.name, tp.name)}\n{key}{where}")
                panels.append((plane, outlines, line))
                if line is not None:
                    lines.append({"timepoint": tp.name, "image": key, "reader": lead.reader, "method": lead.method,
                                  "path": lead.path, "slice": line.slice, "length_mm": line.length_mm,
                                  "start_mm": line.start_mm, "end_mm": line.end_mm, "spacing_xy_mm": plane.spacing_xy})
            except (NACError, KeyError, RuntimeError, OSError) as exc:
                notes.append(src.failed(f"{tp.name} {key} image", exc))
        figures += [(key, timepoint_figure(chunk, f"{patient.patient_id}: delineations on {key}"))
                    for chunk in figure_rows(panels)]
    if not figures:
        return {"missing": "No timepoint has an image with a delineation.", "notes": notes, "recist": lines}
    return {"figures": figures, "notes": notes, "recist": lines,
            "caption": "Each timepoint on the slice of its longest in-plane diameter (leading delineation "
                       "first in the legend); yellow: that delineation's RECIST line (longest in-plane diameter, "
                       "edge to edge on the voxel outline) with its length; axes in mm in the image's own geometry."}


def _model_hash(folder: Path) -> dict[str, str]:
    return {p.name: sha256_file(p) for p in sorted(folder.iterdir()) if p.is_file()}


def _saved_model(src: _Sources, folder: Path, patient_id: str) -> dict[str, Any]:
    from ..modelling.artefact import load_model
    from ..modelling.cohort import predict_study

    entry: dict[str, Any] = {"name": folder.name, "format": "nacresponse-model", "hashes": _model_hash(folder)}
    try:
        model = load_model(folder)
        meta = model.meta
        entry.update(target=meta.get("target"), kind=meta.get("kind"),
                     timepoint=(meta.get("training_summary") or {}).get("timepoint"))
        result = predict_study(src.store, folder, [patient_id])[0]
    except NACError as exc:
        entry["error"] = src.failed(f"model {folder.name}", exc)
        return entry
    if "error" in result:
        entry["missing"] = result["error"]
    else:
        entry.update(probability=result["probability"], classes=result["classes"],
                     top_features=result["top_features"], contribution_kind=result["contribution_kind"])
    return entry


def _dlr_model(src: _Sources, folder: Path, patient_id: str, predictions) -> dict[str, Any]:
    meta_path = folder / DLR_METADATA
    try:
        meta = read_json(meta_path.read_text(encoding="utf-8"))
        nac = meta["nacresponse"]
        name, step = meta["name"], nac["input"]["step"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return {"name": folder.name, "format": "dlr", "error": src.failed(f"{meta_path}", exc)}
    entry: dict[str, Any] = {"name": name, "format": "dlr", "target": "miller_payne (G4-5 vs G1-3)",
                             "kind": f"DLR dual-input network, {nac['input'].get('baseline', 'pre')} + {step}",
                             "timepoint": step, "hashes": {"weights": nac.get("weights_sha256", "")},
                             "top_features": [],
                             "contribution_kind": "image network: see the Grad-CAM maps"}
    rows = None if predictions is None else predictions[(predictions["model"] == name)
                                                        & (predictions["patient_id"] == patient_id)]
    if rows is None or not len(rows):
        entry["missing"] = (f"no stored prediction of {name} for this patient (run 'nacresponse model dlr predict "
                            f"STUDY --model {folder}')")
        return entry
    row = rows.iloc[-1]
    entry["probability"] = float(row["probability"])
    entry["classes"] = {c[len("class_"):]: {"label": row[c], "threshold": float(row[f"threshold_{c[len('class_'):]}"])}
                        for c in rows.columns if c.startswith("class_") and f"threshold_{c[len('class_'):]}" in rows}
    return entry


def _models(src: _Sources, patient_id: str, extra=()) -> dict[str, Any]:
    """Every model folder of ``<study>/models`` and the ``extra`` folders given by the user."""
    root = src.store.root / "models"
    folders = sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    given = [Path(f).resolve() for f in extra]
    folders += [f for f in given if f not in {p.resolve() for p in folders}]
    entries, predictions = [], None
    for folder in folders:
        if (folder / "model.json").is_file():
            entries.append(_saved_model(src, folder, patient_id))
        elif (folder / DLR_METADATA).is_file():
            if predictions is None:
                predictions = src.table(DLR_PREDICTIONS_TABLE)
            entries.append(_dlr_model(src, folder, patient_id, predictions))
        elif folder in given:
            entries.append({"name": folder.name, "format": "unknown", "error": src.failed(
                f"{folder}", InputError(f"not a saved model folder (neither model.json nor {DLR_METADATA})"))})
    if not entries:
        return {"missing": "No saved model in this study (models/ has none; 'nacresponse model train' and "
                           "'nacresponse model dlr train' make them)."}
    return {"entries": entries}


def _images_on_grid(src: _Sources, tp, grid) -> list:
    """(key, image) of the timepoint's images on ``grid`` (2D ones as one-slice volumes, as the
    deep path reads them), in manifest order."""
    from ..deep.slices import as_volume
    from ..geometry import Geometry, geometry_differences
    from ..imageio import read_image

    found = []
    for img in tp.images:
        try:
            image = as_volume(read_image(src.store.path(img.path)))
        except NACError:
            continue
        if not geometry_differences(Geometry.of(image), grid):
            found.append((img.key, image))
    return found


def _outline_for(tp, reader: str, keys: list[str]):
    """The reader's delineation on one of ``keys`` (the map's grid), by the study's one rule."""
    for key in keys:
        seg = tp.reference_segmentation(reader=reader, image=key)
        if seg is not None:
            return seg
    return None


def _gradcam(src: _Sources, patient) -> dict[str, Any]:
    """Every Grad-CAM map of the patient over the image whose grid it shares."""
    import SimpleITK as sitk

    from ..deep.slices import as_volume
    from ..geometry import Geometry
    from ..imageio import read_image
    from .figures import figure_rows, gradcam_figure, image_plane, map_slice, mask_plane

    root = src.store.root / "deep" / "gradcam" / patient.patient_id
    items = []
    for tp in patient.ordered_timepoints():
        for path in sorted((root / tp.name).glob("*.nii.gz")) if (root / tp.name).is_dir() else []:
            reader, _, model = path.name[: -len(".nii.gz")].partition("__")
            try:
                cam = read_image(src.file(path))
                on_grid = _images_on_grid(src, tp, Geometry.of(cam))
                if not on_grid:
                    raise InputError(f"{path}: no image of {tp.name} shares the map's grid")
                image = on_grid[0][1]
                src.file(tp.image(on_grid[0][0]).path)
                heat = sitk.GetArrayFromImage(cam)
                index = map_slice(heat)
                plane = image_plane(image, index, f"{TIMEPOINTS.get(tp.name, tp.name)}\n{model} ({reader})")
                seg = _outline_for(tp, reader, [k for k, _ in on_grid])
                outline = None
                if seg is not None:
                    outline = mask_plane(as_volume(read_image(src.file(seg.path))) == seg.label, index)
                items.append((model, (plane, heat[index] if index is not None else heat, outline)))
            except (NACError, RuntimeError, OSError) as exc:
                src.failed(f"Grad-CAM {path.name} ({tp.name})", exc)
    if not items:
        return {"missing": "No Grad-CAM map for this patient ('nacresponse features deep --gradcam' or "
                           "'nacresponse model dlr predict' write them)."}
    figures = []
    for model in dict.fromkeys(m for m, _ in items):
        panels = [p for m, p in items if m == model]
        figures += [(model, gradcam_figure(chunk, f"Grad-CAM: {model}")) for chunk in figure_rows(panels)]
    return {"figures": figures}


def _mammograms(src: _Sources, patient) -> dict[str, Any]:
    import tempfile

    from ..mc.cohort import MG_ROLES, resmin_panels
    from ..mc.longitudinal import RESMIN_RULE
    from ..mc.overlays import render_overlay

    has_mg = any(i.role in MG_ROLES for tp in patient.timepoints.values() for i in tp.images)
    if not has_mg:
        return {"missing": "No mammograms for this patient."}
    resmin = src.table("mc_resmin")
    rows = None if resmin is None or not len(resmin) else resmin[resmin["patient_id"] == patient.patient_id]
    if rows is None or not len(rows):
        return {"missing": "Mammograms are in the study but not compared yet (run 'nacresponse mc detect', "
                           "'mc extent' and 'mc compare' on the study)."}
    mcs, clusters = src.table("mc_mcs"), src.table("mc_clusters")
    sides = []
    for row in rows.itertuples():
        side = {"row": {c: getattr(row, c) for c in RESMIN_COLUMNS}, "figure": None}
        try:
            panels = resmin_panels(src.store, row, mcs, clusters)
            for p in panels:
                src.file(p["path"])
            if len(panels) == 2:
                with tempfile.TemporaryDirectory() as tmp:
                    flag = " - RESMIN" if row.resmin_flag else ""
                    png = render_overlay(Path(tmp) / "mc.png", panels, crop=True, unit="cm",
                                         suptitle=f"{row.patient_id} {panels[0]['key']}: MC {row.mc_category}, "
                                         f"tumour {row.tumour_recist}{flag}")
                    side["figure"] = png.read_bytes()
        except (NACError, RuntimeError, OSError) as exc:
            side["error"] = src.failed(f"mammograms {row.laterality}", exc)
        sides.append(side)
    return {"sides": sides, "rule": RESMIN_RULE}


def _patient_summary(patient) -> dict[str, Any]:
    return {"patient_id": patient.patient_id,
            "timepoints": [t.name for t in patient.ordered_timepoints()],
            "clinical": {k: v for k, v in patient.clinical.items() if v is not None and str(v) != "nan"},
            "readers": sorted({f"{s.reader} ({s.method})" for t in patient.timepoints.values() for s in t.segmentations})}


def gather_case(store, patient_id: str, models=()) -> dict[str, Any]:
    """Every section of the case report for one patient (figures as PNG bytes); ``models``: model
    folders outside ``<study>/models`` to include."""
    patient = find_patient(store, patient_id)
    src = _Sources(store)
    measurements = _measurements(src, patient_id)
    case = {"patient": _patient_summary(patient), "measurements": measurements,
            "images": _images(src, patient, measurements), "models": _models(src, patient_id, models),
            "gradcam": _gradcam(src, patient), "mammograms": _mammograms(src, patient)}
    models = case["models"].get("entries", [])
    case["provenance"] = {"created": now_iso(), "study": str(store.root), "versions": package_versions(),
                          "models": {m["name"]: m.get("hashes", {}) for m in models},
                          "inputs_sha256": dict(sorted(src.files.items())), "tables": src.tables}
    case["problems"] = src.problems
    return case


def default_path(store, patient_id: str) -> Path:
    """``<study>/reports/cases/<patient>.html`` (characters unsafe in a file name replaced)."""
    import re

    return store.reports_dir / "cases" / f"{re.sub(r'[^A-Za-z0-9._-]', '_', patient_id)}.html"


def write_case_report(store, patient_id: str, out: str | Path | None = None, *, pdf: bool = False,
                      models=()) -> dict[str, Any]:
    """Write the HTML page (and the PDF beside it); ``{html, pdf, problems, case}``."""
    from .page import write_html, write_pdf

    case = gather_case(store, patient_id, models)
    path = Path(out) if out else default_path(store, patient_id)
    if path.suffix.lower() != ".html":
        raise InputError(f"{path}: the case report is an HTML page; give a file name ending in .html")
    write_html(case, path)
    pdf_path = write_pdf(case, path.with_suffix(".pdf")) if pdf else None
    store.audit("report case", target=str(path), details={"patient_id": patient_id, "pdf": bool(pdf),
                                                          "problems": len(case["problems"])})
    return {"html": path, "pdf": pdf_path, "problems": case["problems"], "case": case}
