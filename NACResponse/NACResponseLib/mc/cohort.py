"""MC detection, extent and RESMIN comparison over the mammograms of a study (tables in the store).

Tables written (Parquet, provenance embedded):

- ``mc_images``: one row per mammogram: ``patient_id, timepoint, image, view, laterality, spacing_mm,
  spacing_source, breast_area_mm2, chest_wall, n_candidates, n_kept, status`` (``ok`` or the error);
- ``mc_detections``: every candidate (module :mod:`.detect` columns) with its ids and physical
  (LPS) coordinates ``x_phys_mm, y_phys_mm`` for the viewer;
- ``mc_mcs`` / ``mc_clusters``: the MCs after user edits with their ``cluster_id``, and one row per
  cluster (module :mod:`.clusters` columns);
- ``mc_longitudinal``: pre/post rows per view (module :mod:`.longitudinal`);
- ``mc_resmin``: per patient and laterality: extents, MC category, tumour RECIST category and its
  source, ``resmin_flag`` and the report sentence.

Pixel spacing: the user's value if given, else the file's (DICOM Pixel Spacing / Imager Pixel
Spacing; other formats their spacing unless it is exactly 1 x 1 mm, the value a format reports when
it has none), else the manifest's ``pixel_spacing_mm``, else a clear error.  Edits (add/remove
points) are JSON files ``mc_edits/<patient>/<timepoint>/<image>.json`` in the study folder
(:mod:`.editing`); ``extent`` re-applies them whenever they or the detections change.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..atomic import atomic_write_text
from ..errors import InputError, NACError
from ..provenance import collect, sha256_json
from ..stage import StageResult
from ..study.store import StudyStore
from .clusters import ClusterParams
from .detect import DetectorParams, check_mammogram_array, detect_microcalcifications
from .editing import load_edits, recompute, validate_edits
from .longitudinal import MAX_MATCH_MM, RESMIN_RULE, compare_image, resmin_flag, resmin_statement, summarise

MG_ROLES = ("mg_cc", "mg_mlo")
ID_COLUMNS = ["patient_id", "timepoint", "image", "view", "laterality"]


def load_mammogram(path: str | Path, *, spacing_mm: float | None = None, manifest_spacing_mm: float | None = None):
    """Read a 2D mammogram; return ``(array float32 (rows, cols), spacing_mm, info)``.

    ``info``: ``spacing_source`` (user/file/manifest), ``origin``, ``direction`` (2x2), and for DICOM
    ``view`` and ``laterality`` when the header has them.  Raises :class:`InputError` for RGB, 3D,
    constant images and unknown spacing (see the module docstring for the spacing rule).
    """
    path = Path(path)
    info: dict[str, Any] = {"origin": (0.0, 0.0), "direction": ((1.0, 0.0), (0.0, 1.0))}
    if path.suffix.lower() == ".dcm":
        arr, file_spacing = _read_dicom(path, info)
    else:
        import SimpleITK as sitk

        from ..imageio import read_image

        img = read_image(path)
        if img.GetNumberOfComponentsPerPixel() != 1:
            raise InputError(f"{path}: colour / vector image ({img.GetNumberOfComponentsPerPixel()} components); "
                             "a mammogram has one grey value per pixel")
        size = img.GetSize()
        if img.GetDimension() == 3 and size[2] > 1:
            raise InputError(f"{path}: 3D volume of size {size}; a mammogram is a 2D image")
        arr = sitk.GetArrayFromImage(img)
        sp = img.GetSpacing()[:2]
        file_spacing = None if all(abs(s - 1.0) < 1e-9 for s in sp) else sp
        info["origin"] = tuple(img.GetOrigin()[:2])
        d = np.asarray(img.GetDirection(), dtype=float).reshape(img.GetDimension(), img.GetDimension())[:2, :2]
        info["direction"] = tuple(map(tuple, d))
    if spacing_mm is not None:
        spacing, info["spacing_source"] = spacing_mm, "user"
    elif file_spacing is not None:
        spacing, info["spacing_source"] = file_spacing, "file"
    elif manifest_spacing_mm is not None and np.isfinite(float(manifest_spacing_mm)):
        spacing, info["spacing_source"] = float(manifest_spacing_mm), "manifest"
    else:
        raise InputError(f"{path}: the file has no pixel spacing (a spacing of 1 x 1 mm means 'missing'); give it "
                         "with --spacing-mm or the manifest's pixel_spacing_mm")
    arr, s = check_mammogram_array(arr, spacing, str(path))
    return arr, s, info


def _read_dicom(path: Path, info: dict):
    import pydicom

    try:
        ds = pydicom.dcmread(str(path))
        arr = ds.pixel_array
    except Exception as exc:  # pydicom raises many types for corrupt files
        raise InputError(f"{path}: cannot read DICOM pixel data ({exc})") from None
    sp = getattr(ds, "PixelSpacing", None) or getattr(ds, "ImagerPixelSpacing", None)
    spacing = tuple(float(v) for v in sp) if sp else None
    if getattr(ds, "PhotometricInterpretation", "") == "MONOCHROME1":  # bright = less dense: invert
        arr = arr.max() - arr
    view = str(getattr(ds, "ViewPosition", "") or "").upper()
    if view in ("CC", "MLO"):
        info["view"] = view
    lat = str(getattr(ds, "ImageLaterality", "") or getattr(ds, "Laterality", "") or "").upper()
    if lat in ("L", "R"):
        info["laterality"] = lat
    return np.asarray(arr, dtype=np.float32), spacing


def physical_xy(x_mm: np.ndarray, y_mm: np.ndarray, spacing: float, info: dict) -> tuple[np.ndarray, np.ndarray]:
    """mm from the image corner -> physical (LPS) coordinates via the image's origin and direction."""
    ci, ri = np.asarray(x_mm) / spacing - 0.5, np.asarray(y_mm) / spacing - 0.5
    d = np.asarray(info["direction"], dtype=float)
    o = np.asarray(info["origin"], dtype=float)
    px = o[0] + d[0, 0] * ci * spacing + d[0, 1] * ri * spacing
    py = o[1] + d[1, 0] * ci * spacing + d[1, 1] * ri * spacing
    return px, py


def mammograms(store: StudyStore, timepoints: list[str] | None = None) -> list[tuple[str, str, Any]]:
    """``(patient_id, timepoint, Image)`` for every mammogram of the study."""
    out = []
    for patient in store.cohort:
        for tp in patient.ordered_timepoints():
            if timepoints and tp.name not in timepoints:
                continue
            for img in tp.images:
                if img.role in MG_ROLES:
                    out.append((patient.patient_id, tp.name, img))
    return out


def _view(img) -> str:
    return "CC" if img.role == "mg_cc" else "MLO"


DETECT_STAGE = "mc_detect"
DETECT_FUNCTION = "NACResponseLib.mc.cohort:detect_image"
#: Bump when the per-image record of :func:`detect_image` changes: every image is then redone.
DETECT_VERSION = "1"
DETECT_TABLES = ("mc_images", "mc_detections")
EXTENT_TABLES = ("mc_mcs", "mc_clusters")
IMAGE_KEYS = ["patient_id", "timepoint", "image"]


def _plain(value):
    return value.item() if isinstance(value, np.generic) else value


def detect_image(path: str, params: dict, spacing_mm: float | None = None,
                 manifest_spacing_mm: float | None = None, view: str = "CC") -> dict[str, Any]:
    """One mammogram's detections as a JSON record (a runner task: cached by inputs and parameters)."""
    p = DetectorParams(**{k: tuple(v) if isinstance(v, list) else v for k, v in params.items()})
    arr, s, info = load_mammogram(path, spacing_mm=spacing_mm, manifest_spacing_mm=manifest_spacing_mm)
    res = detect_microcalcifications(arr, s, view=view, params=p, name=str(path))
    det = res.detections
    det["x_phys_mm"], det["y_phys_mm"] = physical_xy(det["x_mm"], det["y_mm"], s, info)
    image = {"spacing_mm": float(s), "spacing_source": info["spacing_source"], "rows": int(arr.shape[0]),
             "cols": int(arr.shape[1]), "breast_area_mm2": float(res.breast.area_mm2),
             "chest_wall": res.breast.chest_wall, "pectoral_found": bool(res.breast.pectoral.any()),
             "n_candidates": int(len(det)), "n_kept": int(det["kept"].sum())}
    return {"image": image, "columns": [str(c) for c in det.columns],
            "detections": [[_plain(v) for v in det[c].tolist()] for c in det.columns]}


def _detect_tasks(store: StudyStore, items, params: dict, spacing_mm: float | None):
    from ..runner import Task

    tasks = []
    for pid, tp, img in items:
        path = store.path(img.path)
        ids = {"patient_id": pid, "timepoint": tp, "image": img.key, "view": _view(img),
               "laterality": img.laterality or ""}
        kwargs = {"path": str(path), "params": params, "spacing_mm": spacing_mm,
                  "manifest_spacing_mm": img.pixel_spacing_mm, "view": ids["view"]}
        tasks.append(Task(key=f"{pid}/{tp}/{img.key}", function=DETECT_FUNCTION, kwargs=kwargs,
                          inputs=(str(path),) if path.is_file() else (),
                          identity={**kwargs, "path": img.path}, version=DETECT_VERSION, meta=ids))
    return tasks


def detect_study(store: StudyStore, *, params: DetectorParams | None = None, spacing_mm: float | None = None,
                 timepoints: list[str] | None = None, force: bool = False, mode: str | None = "serial",
                 jobs: int | None = None, progress_mode: str | None = None, callback=None,
                 cancel=None) -> StageResult:
    """Detect MCs on the study's mammograms; writes ``mc_images`` and ``mc_detections`` as one unit.

    Each image's result is keyed by its file contents and the detector parameters (runner
    records under ``work/mc_detect``): a changed parameter or a replaced mammogram is redone, an
    unchanged rerun reuses it, and ``force`` redoes every image.  Per-image failures are listed
    in ``mc_images`` (status) and the result; the run goes on.  A run over some timepoints keeps
    the stored rows of the others (refused when those were detected with other parameters).
    """
    from ..runner import discard_records, run_tasks

    p = params or DetectorParams()
    items = mammograms(store, timepoints)
    if not items:
        raise InputError(f"{store.root}: the study has no mammograms (roles {MG_ROLES})")
    parameters = {**p.to_dict(), "spacing_mm": spacing_mm}
    params_sha = sha256_json(parameters)
    tasks = _detect_tasks(store, items, json.loads(json.dumps(p.to_dict())), spacing_mm)
    work = store.work_dir(DETECT_STAGE)
    if force:
        discard_records(work, [t.digest() for t in tasks])
    summary = run_tasks(tasks, work, mode=mode, jobs=jobs, stage="mc detect", progress=callback,
                        progress_mode=progress_mode, cancel=cancel)
    img_rows, det_frames = [], []
    for t in tasks:
        ids, digest = t.meta, summary.digests[t.key]
        if t.key in summary.results:
            rec = summary.results[t.key]
            img_rows.append({**ids, **rec["image"], "status": "ok", "digest": digest, "params_sha256": params_sha})
            det = pd.DataFrame(dict(zip(rec["columns"], rec["detections"])), columns=rec["columns"])
            for k, v in reversed(list(ids.items())):
                det.insert(0, k, v)
            det_frames.append(det)
        else:
            img_rows.append({**ids, "status": f"failed: {summary.failures[t.key]}", "digest": digest,
                             "params_sha256": params_sha})
    images = pd.DataFrame(img_rows)
    dets = pd.concat(det_frames, ignore_index=True) if det_frames else pd.DataFrame(columns=ID_COLUMNS)
    if timepoints and store.has_table("mc_images"):
        images, dets = _merge_detections(store, images, dets, params_sha)
    fingerprint = sha256_json(sorted(zip(images["patient_id"], images["timepoint"], images["image"],
                                         images["digest"], images["status"])))
    reused_tables = store.together(DETECT_TABLES) and \
        store.table_provenance("mc_images").get("fingerprint") == fingerprint
    if not reused_tables:
        prov = collect(step="mc.detect", parameters=parameters, base=store.root,
                       inputs=[store.path(img.path) for _, _, img in items if store.path(img.path).is_file()],
                       extra={"fingerprint": fingerprint, "summary": summary.as_dict()})
        store.write_tables({"mc_images": images, "mc_detections": dets}, prov)
    return StageResult.from_summary("mc detect", summary, tables=[] if reused_tables else list(DETECT_TABLES))


def _merge_detections(store: StudyStore, images, dets, params_sha: str):
    """Keep the stored rows of the mammograms this run did not plan (other timepoints)."""
    store.check_together(DETECT_TABLES, "mc detect")
    old = store.read_table("mc_images")
    planned = set(images[IMAGE_KEYS].astype(str).itertuples(index=False, name=None))
    others = old[[k not in planned for k in old[IMAGE_KEYS].astype(str).itertuples(index=False, name=None)]]
    stale = sorted(set(others.get("params_sha256", pd.Series([None] * len(others)))) - {params_sha})
    if stale:
        raise InputError(f"{store.table_path('mc_images')}: the other timepoints were detected with other parameters "
                         "(or by an older version); rerun mc detect over all timepoints")
    return (store.merged("mc_images", images, IMAGE_KEYS, planned),
            store.merged("mc_detections", dets, IMAGE_KEYS, planned))


def edits_path(store: StudyStore, patient_id: str, timepoint: str, image: str) -> Path:
    return store.path(f"mc_edits/{patient_id}/{timepoint}/{image}.json")


def save_edits(store: StudyStore, patient_id: str, timepoint: str, image: str, edits: dict, *, actor: str | None = None) -> Path:
    """Store a user's corrected point list for one mammogram (validated, atomic, audited)."""
    import json

    edits = validate_edits(edits, f"edits for {patient_id}/{timepoint}/{image}")
    path = edits_path(store, patient_id, timepoint, image)
    atomic_write_text(path, json.dumps(edits, indent=1))
    store.audit("mc.edit", actor=actor, target=f"{patient_id}/{timepoint}/{image}",
                details={"add": len(edits["add"]), "remove": len(edits["remove"])})
    return path


def extent_study(store: StudyStore, *, params: ClusterParams | None = None, force: bool = False) -> StageResult:
    """Apply user edits and cluster every mammogram's MCs; writes ``mc_mcs`` and ``mc_clusters`` as one unit.

    Reused when the detections, the edits and the parameters are unchanged since the last run.
    ``outputs``: ``clusters`` (count) and ``unmatched_removals`` (removal points that matched no MC).
    """
    p = params or ClusterParams()
    store.check_together(DETECT_TABLES, "mc detect")
    dets = store.read_table("mc_detections")
    images = store.read_table("mc_images")
    images = images[images["status"] == "ok"]
    edits, edit_files = {}, []
    for row in images.itertuples():
        path = edits_path(store, row.patient_id, row.timepoint, row.image)
        if path.is_file():
            edits[(row.patient_id, row.timepoint, row.image)] = load_edits(path)
            edit_files.append(path)
    signature = sha256_json({"detections": store.table_provenance("mc_detections").get("unit"),
                             "edits": {"/".join(k): v for k, v in edits.items()}, "params": p.to_dict()})
    if not force and store.together(EXTENT_TABLES) and \
            store.table_provenance("mc_clusters").get("signature") == signature:
        return StageResult("mc extent", reused=len(images),
                           outputs={"clusters": len(store.read_table("mc_clusters")), "unmatched_removals": {},
                                    "cluster_rule": p.rule()})
    mc_frames, cl_frames, unmatched = [], [], {}
    for row in images.itertuples():
        key = (row.patient_id, row.timepoint, row.image)
        sel = dets[(dets["patient_id"] == key[0]) & (dets["timepoint"] == key[1]) & (dets["image"] == key[2])]
        ids = {"patient_id": key[0], "timepoint": key[1], "image": key[2], "view": row.view,
               "laterality": row.laterality}
        base = sel.drop(columns=[c for c in ID_COLUMNS if c in sel])
        mcs, clusters, um = recompute(base, edits.get(key), params=p, breast_area_mm2=row.breast_area_mm2)
        if um:
            unmatched["/".join(key)] = um
        for frame, out in ((mcs, mc_frames), (clusters, cl_frames)):
            frame = frame.copy()
            for k, v in reversed(list(ids.items())):
                frame.insert(0, k, v)
            out.append(frame)
    mcs_all = pd.concat(mc_frames, ignore_index=True) if mc_frames else pd.DataFrame(columns=ID_COLUMNS)
    cl_all = pd.concat(cl_frames, ignore_index=True) if cl_frames else pd.DataFrame(columns=ID_COLUMNS)
    prov = collect(step="mc.extent", parameters=p.to_dict(), inputs=edit_files, base=store.root,
                   extra={"signature": signature, "unmatched_removals": unmatched, "cluster_rule": p.rule()})
    store.write_tables({"mc_mcs": mcs_all, "mc_clusters": cl_all}, prov)
    return StageResult("mc extent", done=len(images), tables=list(EXTENT_TABLES),
                       outputs={"clusters": len(cl_all), "unmatched_removals": unmatched, "cluster_rule": p.rule()})


def _select(frame: pd.DataFrame, key: tuple[str, str, str], timepoint: str) -> pd.DataFrame:
    pid, lat, view = key
    return frame[(frame["patient_id"] == pid) & (frame["laterality"] == lat) & (frame["view"] == view)
                 & (frame["timepoint"] == timepoint)]


def tumour_recist(store: StudyStore, patient_id: str, pre: str = "pre", post: str = "post", *, reader: str | None = None,
                  method: str | None = None) -> tuple[str | None, str]:
    """RECIST category of the tumour from the segmentation measurements (segmentation.measurements); ``(category, source)``.

    Uses the given reader/method, else the first available of methods reference, consensus, manual
    (readers in alphabetical order) present at both timepoints.
    """
    from ..imageio import read_mask
    from ..segmentation.measurements import longest_inplane_diameter_mm, recist_category

    patient = store.cohort[patient_id]
    try:
        tp0, tp1 = patient.timepoint(pre), patient.timepoint(post)
    except NACError as exc:
        return None, f"unavailable: {exc}"
    choices = []
    for m in ([method] if method else ["reference", "consensus", "manual"]):
        readers = sorted({s.reader for s in tp0.segmentations_by(method=m)} & {s.reader for s in tp1.segmentations_by(method=m)})
        for r in ([reader] if reader else readers):
            if r in readers:
                choices.append((r, m))
    if not choices:
        return None, "unavailable: no segmentation at both timepoints"
    r, m = choices[0]
    s0, s1 = tp0.reference_segmentation(r, m), tp1.reference_segmentation(r, m)
    try:
        d0, _ = longest_inplane_diameter_mm(read_mask(store.path(s0.path), label=s0.label), s0.label)
        try:
            d1, _ = longest_inplane_diameter_mm(read_mask(store.path(s1.path), label=None), s1.label)
        except InputError:  # an empty post mask: nothing left
            d1 = 0.0
        return recist_category(d0, d1), f"segmentation {r}/{m}: {d0:.1f} -> {d1:.1f} mm"
    except NACError as exc:
        return None, f"unavailable: {exc}"


def compare_study(store: StudyStore, *, pre: str = "pre", post: str = "post", recist: dict[str, str] | None = None,
                  reader: str | None = None, method: str | None = None, max_match_mm: float = MAX_MATCH_MM,
                  follow_margin_mm: float = 5.0) -> dict:
    """Pre/post comparison per patient and laterality; writes ``mc_longitudinal`` and ``mc_resmin``.

    ``recist``: optional ``{patient_id: "CR"|"PR"|"SD"|"PD"}`` given by the user (wins over the
    segmentation-based category).  ``outputs``: ``resmin`` (the table), ``patients``, ``flagged``."""
    store.check_together(DETECT_TABLES, "mc detect")
    store.check_together(EXTENT_TABLES, "mc extent")
    mcs = store.read_table("mc_mcs")
    clusters = store.read_table("mc_clusters")
    images = store.read_table("mc_images")
    images = images[images["status"] == "ok"]
    long_rows, res_rows = [], []
    for (pid, lat), grp in images.groupby(["patient_id", "laterality"]):
        views = sorted(set(grp.loc[grp["timepoint"] == pre, "view"]) & set(grp.loc[grp["timepoint"] == post, "view"]))
        if not views:
            continue
        per_view = []
        for view in views:
            key = (pid, lat, view)
            rows = compare_image(_select(clusters, key, pre), _select(clusters, key, post), _select(mcs, key, post),
                                 max_match_mm=max_match_mm,
                                 follow_margin_mm=follow_margin_mm)
            if len(rows):
                rows.insert(0, "view", view)
                per_view.append(rows)
        table = pd.concat(per_view, ignore_index=True) if per_view else pd.DataFrame()
        if len(table):
            for k, v in reversed([("patient_id", pid), ("laterality", lat), ("pre", pre), ("post", post)]):
                table.insert(0, k, v)
            long_rows.append(table)
        summary = summarise(table)
        if recist and pid in recist:
            tcat, tsrc = str(recist[pid]).upper(), "user"
        else:
            tcat, tsrc = tumour_recist(store, pid, pre, post, reader=reader, method=method)
        largest = table.sort_values("post_extent_mm", ascending=False).iloc[0] if len(table) else None
        res_rows.append({"patient_id": pid, "laterality": lat, **summary, "tumour_recist": tcat,
                         "tumour_source": tsrc, "resmin_flag": resmin_flag(tcat, summary["mc_category"]),
                         "residual_view": None if largest is None else largest["view"],
                         "statement": resmin_statement(summary, tcat)})
    longitudinal = pd.concat(long_rows, ignore_index=True) if long_rows else pd.DataFrame()
    resmin = pd.DataFrame(res_rows)
    prov = collect(step="mc.compare", parameters={"pre": pre, "post": post, "reader": reader, "method": method,
                                                  "max_match_mm": max_match_mm, "follow_margin_mm": follow_margin_mm,
                                                  "rule": RESMIN_RULE, "user_recist": recist or {}})
    store.write_tables({"mc_longitudinal": longitudinal, "mc_resmin": resmin}, prov)
    return StageResult("mc compare", done=len(resmin), tables=["mc_longitudinal", "mc_resmin"],
                       outputs={"patients": len(resmin), "resmin": resmin,
                                "flagged": int(resmin["resmin_flag"].sum()) if len(resmin) else 0})


def resmin_panels(store: StudyStore, row, mcs: pd.DataFrame, clusters: pd.DataFrame, *, pre: str = "pre",
                  post: str = "post") -> list[dict]:
    """The pre and post panels of ``overlays.render_overlay`` for one ``mc_resmin`` row, on the view
    holding its largest residual cluster; [] when either mammogram is missing."""
    view = getattr(row, "residual_view", None) or "CC"
    key = f"mg_{str(view).lower()}_{row.laterality}"
    patient = store.cohort[row.patient_id]
    panels = []
    for tp in (pre, post):
        if tp not in patient.timepoints or not patient.timepoints[tp].has_image(key):
            return []
        img = patient.timepoints[tp].image(key)
        arr, spacing, _ = load_mammogram(store.path(img.path), manifest_spacing_mm=img.pixel_spacing_mm)
        sel = (mcs["patient_id"] == row.patient_id) & (mcs["timepoint"] == tp) & (mcs["image"] == key)
        csel = (clusters["patient_id"] == row.patient_id) & (clusters["timepoint"] == tp) & (clusters["image"] == key)
        panels.append({"image": arr, "spacing_mm": spacing, "mcs": mcs[sel], "clusters": clusters[csel],
                       "title": f"{tp}: {int(csel.sum())} cluster(s)", "key": key, "path": img.path})
    return panels
