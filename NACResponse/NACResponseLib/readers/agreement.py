"""Spatial agreement between segmentations: overlap, surface distances in mm, volumes, Bland-Altman.

Surface distances use the voxel-centre convention: the surface of a mask is its voxels with a
face-neighbour outside the mask; distances are Euclidean in physical units (anisotropic spacing
honoured through ``scipy.ndimage.distance_transform_edt(sampling=spacing)``).

* ``hd95_mm``: the larger of the two directed 95th percentiles (MONAI's convention).
* ``hausdorff_mm``: the classic (100th percentile) symmetric Hausdorff distance.
* ``msd_mm``: mean of all surface distances of both directions pooled (symmetric mean surface distance).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import GeometryMismatchError, InputError, NACError
from ..segmentation.measurements import volume_ml
from ..study.store import StudyStore

log = logging.getLogger(__name__)

AGREEMENT_COLUMNS = ["patient_id", "timepoint", "reader_a", "reader_b", "dice", "jaccard", "hd95_mm",
                     "hausdorff_mm", "msd_mm", "volume_a_ml", "volume_b_ml", "volume_diff_ml",
                     "volume_rel_diff", "error"]


def _binary(mask) -> np.ndarray:
    m = np.asarray(mask)
    if m.dtype != bool:
        m = m != 0
    return m


def _check_pair(a: np.ndarray, b: np.ndarray, spacing) -> np.ndarray:
    if a.shape != b.shape:
        raise GeometryMismatchError(f"masks differ in shape: {a.shape} vs {b.shape}")
    sp = np.asarray(spacing if spacing is not None else (1.0,) * a.ndim, dtype=float)
    if sp.shape != (a.ndim,) or np.any(sp <= 0):
        raise InputError(f"spacing {tuple(sp)} does not fit a {a.ndim}D mask (one positive value per axis)")
    return sp


def dice(a, b) -> float:
    """2|A∩B| / (|A|+|B|); 1.0 when both masks are empty."""
    a, b = _binary(a), _binary(b)
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int(np.logical_and(a, b).sum()) / total


def jaccard(a, b) -> float:
    """|A∩B| / |A∪B|; 1.0 when both masks are empty."""
    a, b = _binary(a), _binary(b)
    union = int(np.logical_or(a, b).sum())
    return 1.0 if union == 0 else int(np.logical_and(a, b).sum()) / union


def surface(mask) -> np.ndarray:
    """Boolean surface voxels: mask voxels with at least one face-neighbour outside (or at the border)."""
    from scipy import ndimage

    m = _binary(mask)
    structure = ndimage.generate_binary_structure(m.ndim, 1)
    return m & ~ndimage.binary_erosion(m, structure=structure, border_value=0)


def directed_surface_distances(a, b, spacing=None) -> np.ndarray:
    """Distance (mm) from every surface voxel of ``a`` to the nearest surface voxel of ``b``."""
    from scipy import ndimage

    a, b = _binary(a), _binary(b)
    sp = _check_pair(a, b, spacing)
    sa, sb = surface(a), surface(b)
    if not sa.any() or not sb.any():
        raise InputError("surface distance needs two non-empty masks")
    # Crop to the joint bounding box (plus margin) so the distance transform stays small.
    box = _bounding_box(sa | sb)
    dist_to_b = ndimage.distance_transform_edt(~sb[box], sampling=sp)
    return dist_to_b[sa[box]]


def _bounding_box(m: np.ndarray) -> tuple[slice, ...]:
    idx = np.argwhere(m)
    lo, hi = idx.min(axis=0), idx.max(axis=0) + 1
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))


def surface_distances(a, b, spacing=None) -> dict[str, float]:
    """HD95, Hausdorff and mean surface distance in mm (see the module docstring for conventions)."""
    d_ab = directed_surface_distances(a, b, spacing)
    d_ba = directed_surface_distances(b, a, spacing)
    return {
        "hd95_mm": float(max(np.percentile(d_ab, 95), np.percentile(d_ba, 95))),
        "hausdorff_mm": float(max(d_ab.max(), d_ba.max())),
        "msd_mm": float((d_ab.sum() + d_ba.sum()) / (d_ab.size + d_ba.size)),
    }


def compare_masks(a, b, spacing=None) -> dict[str, float]:
    """All spatial agreement measures of two masks on one grid (numpy arrays, spacing in array axis order)."""
    a, b = _binary(a), _binary(b)
    sp = _check_pair(a, b, spacing)
    # measurements.volume_ml takes spacing in (x, y, z) order, the reverse of the array axes
    va, vb = (volume_ml(m, None, tuple(reversed(sp))) for m in (a, b))
    out = {"dice": dice(a, b), "jaccard": jaccard(a, b)}
    if a.any() and b.any():
        out.update(surface_distances(a, b, sp))
    else:
        out.update({"hd95_mm": np.nan, "hausdorff_mm": np.nan, "msd_mm": np.nan})
    out.update({"volume_a_ml": va, "volume_b_ml": vb, "volume_diff_ml": va - vb,
                "volume_rel_diff": (va - vb) / ((va + vb) / 2) if va + vb > 0 else np.nan})
    return out


def compare_images(a, b, name_a: str = "mask A", name_b: str = "mask B") -> dict[str, float]:
    """Like :func:`compare_masks` for two SimpleITK label maps (their grids must match)."""
    import SimpleITK as sitk

    from ..geometry import check_same_geometry

    check_same_geometry(a, b, name_a, name_b)
    spacing = tuple(reversed(a.GetSpacing()))  # array axis order (z, y, x)
    return compare_masks(sitk.GetArrayViewFromImage(a), sitk.GetArrayViewFromImage(b), spacing)


# ---- Bland-Altman --------------------------------------------------------------------------------

def bland_altman(a, b, *, alpha: float = 0.05) -> dict[str, float]:
    """Bland-Altman statistics of paired measurements (difference = a - b).

    Bias, SD of differences, limits of agreement bias +/- z*SD and their confidence intervals with
    the standard errors of Bland & Altman (1999): SE(bias) = s/sqrt(n), SE(LoA) = s*sqrt(3/n), using
    the t distribution with n - 1 degrees of freedom.
    """
    from scipy import stats

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    ok = np.isfinite(a) & np.isfinite(b)
    a, b = a[ok], b[ok]
    n = a.size
    if n < 2:
        raise InputError(f"Bland-Altman needs at least 2 complete pairs (got {n})")
    diff = a - b
    bias = float(diff.mean())
    sd = float(diff.std(ddof=1))
    z = float(stats.norm.ppf(1 - alpha / 2))
    t = float(stats.t.ppf(1 - alpha / 2, n - 1))
    se_bias, se_loa = sd / np.sqrt(n), sd * np.sqrt(3.0 / n)
    lo, hi = bias - z * sd, bias + z * sd
    return {"n": n, "bias": bias, "sd": sd, "loa_low": lo, "loa_high": hi,
            "bias_ci_low": bias - t * se_bias, "bias_ci_high": bias + t * se_bias,
            "loa_low_ci_low": lo - t * se_loa, "loa_low_ci_high": lo + t * se_loa,
            "loa_high_ci_low": hi - t * se_loa, "loa_high_ci_high": hi + t * se_loa,
            "mean_of_means": float(((a + b) / 2).mean())}


def bland_altman_plot(a, b, path: str | Path, *, title: str = "Bland-Altman", unit: str = "mL") -> Path:
    """Scatter of difference vs mean with bias and limits of agreement; written as PNG (atomic)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from ..atomic import atomic_write_with

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    s = bland_altman(a, b)
    ok = np.isfinite(a) & np.isfinite(b)
    mean, diff = (a[ok] + b[ok]) / 2, a[ok] - b[ok]
    fig, ax = plt.subplots(figsize=(5.5, 4))
    ax.scatter(mean, diff, s=14, alpha=0.8)
    ax.axhline(s["bias"], color="k", label=f"bias {s['bias']:.3g} {unit}")
    for key in ("loa_low", "loa_high"):
        ax.axhline(s[key], color="k", ls="--")
    ax.axhspan(s["loa_low"], s["loa_high"], color="0.9", zorder=0,
               label=f"95% LoA [{s['loa_low']:.3g}, {s['loa_high']:.3g}]")
    ax.set_xlabel(f"mean of readers ({unit})")
    ax.set_ylabel(f"difference ({unit})")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    atomic_write_with(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)
    return path


# ---- cohort level ---------------------------------------------------------------------------------

def _method_order(method: str) -> tuple[int, str]:
    """Sort key of a method by :data:`~NACResponseLib.study.model.METHOD_PRIORITY` (others after, by name)."""
    from ..study.model import METHOD_PRIORITY

    return (METHOD_PRIORITY.index(method) if method in METHOD_PRIORITY else len(METHOD_PRIORITY), method)


def segmentation_sets(cohort, readers: Sequence[str] | None = None, methods: Sequence[str] | None = ("manual",),
                      extra: Sequence[tuple[str, str]] = (), failed: dict[str, str] | None = None
                      ) -> dict[tuple[str, str], dict[str, Any]]:
    """(patient_id, timepoint) -> {reader: Segmentation} for the chosen readers/methods.

    ``readers``: None or empty for every reader; ``methods``: None for every method, empty for none.
    ``extra`` adds (reader, method) pairs, e.g. ``("STAPLE", "consensus")`` or ``("GT", "reference")``.

    One segmentation per reader, by the study model's rule
    (:meth:`~NACResponseLib.study.model.Timepoint.reference_segmentation`), never by manifest row
    order: of the reader's matching methods (requested ``methods`` and its ``extra`` methods) the
    first in ``METHOD_PRIORITY`` order that the reader has (methods outside it last, by name).
    Several files of that reader and method are ambiguous and not resolved: with ``failed`` (a dict)
    the reader is left out of that case and the reason recorded under ``"<patient>/<timepoint> <reader>"``
    (batch work records each failure and goes on); without it the :class:`InputError` is raised.
    """
    want_readers = set(readers) if readers else None
    extra_by_reader: dict[str, set[str]] = {}
    for reader, method in extra:
        extra_by_reader.setdefault(reader, set()).add(method)
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for patient in cohort:
        for tp in patient.ordered_timepoints():
            wanted: dict[str, set[str]] = {}
            for seg in tp.segmentations:
                take = ((methods is None or seg.method in methods)
                        and (want_readers is None or seg.reader in want_readers))
                if take or seg.method in extra_by_reader.get(seg.reader, ()):
                    wanted.setdefault(seg.reader, set()).add(seg.method)
            chosen: dict[str, Any] = {}
            for reader in sorted(wanted):
                try:
                    for method in sorted(wanted[reader], key=_method_order):
                        seg = tp.reference_segmentation(reader=reader, method=method)
                        if seg is not None:
                            chosen[reader] = seg
                            break
                except InputError as exc:
                    msg = f"patient {patient.patient_id}: {exc}"
                    if failed is None:
                        raise InputError(msg) from exc
                    failed[f"{patient.patient_id}/{tp.name} {reader}"] = msg
                    log.warning("%s", msg)
                    continue
                others = sorted((s for s in tp.segmentations_by(reader)
                                 if s.method in wanted[reader] and s is not chosen[reader]), key=lambda s: s.path)
                if others:
                    log.info("%s/%s: reader %s has several segmentations; using %s (%s) over %s",
                             patient.patient_id, tp.name, reader, chosen[reader].path, chosen[reader].method,
                             ", ".join(f"{s.path} ({s.method})" for s in others))
            if chosen:
                out[(patient.patient_id, tp.name)] = chosen
    return out


def pairwise_agreement(store: StudyStore, sets: dict[tuple[str, str], dict[str, Any]] | None = None, *,
                       readers: Sequence[str] | None = None, progress=None, cancel=None):
    """Agreement for every reader pair and case of a study; per-case failures are recorded, not fatal.

    Returns a pandas DataFrame with :data:`AGREEMENT_COLUMNS`.
    """
    import pandas as pd
    import SimpleITK as sitk

    from ..geometry import check_same_geometry
    from ..imageio import read_mask

    sets = sets if sets is not None else segmentation_sets(store.cohort, readers)
    rows = []
    for (pid, tp), by_reader in sets.items():
        if cancel is not None:
            cancel.check()
        names = sorted(by_reader)
        masks: dict[str, Any] = {}
        errors: dict[str, str] = {}
        for r in names:
            seg = by_reader[r]
            try:
                masks[r] = read_mask(store.path(seg.path), label=seg.label)
            except NACError as exc:
                errors[r] = str(exc)
        for ra, rb in itertools.combinations(names, 2):
            row: dict[str, Any] = {"patient_id": pid, "timepoint": tp, "reader_a": ra, "reader_b": rb}
            if ra in errors or rb in errors:
                row["error"] = errors.get(ra) or errors.get(rb)
            else:
                try:
                    la = sitk.GetArrayFromImage(masks[ra]) == by_reader[ra].label
                    lb = sitk.GetArrayFromImage(masks[rb]) == by_reader[rb].label
                    check_same_geometry(masks[ra], masks[rb], by_reader[ra].path, by_reader[rb].path)
                    row.update(compare_masks(la, lb, tuple(reversed(masks[ra].GetSpacing()))))
                    row["error"] = ""
                except NACError as exc:
                    row["error"] = str(exc)
            rows.append(row)
        if progress is not None:
            progress.update(1, f"{pid}/{tp}")
    frame = pd.DataFrame(rows, columns=AGREEMENT_COLUMNS)
    frame["error"] = frame["error"].fillna("")
    return frame


def summarise_pairs(frame):
    """Per reader pair: number of cases, median/IQR of Dice, HD95, MSD, and volume Bland-Altman."""
    import pandas as pd

    rows = []
    good = frame[frame["error"] == ""]
    for (ra, rb), sub in good.groupby(["reader_a", "reader_b"], sort=True):
        row: dict[str, Any] = {"reader_a": ra, "reader_b": rb, "cases": len(sub)}
        for col in ("dice", "jaccard", "hd95_mm", "msd_mm"):
            q = sub[col].quantile([0.25, 0.5, 0.75])
            row[f"{col}_median"], row[f"{col}_q1"], row[f"{col}_q3"] = q[0.5], q[0.25], q[0.75]
        if len(sub) >= 2:
            ba = bland_altman(sub["volume_a_ml"], sub["volume_b_ml"])
            row.update({"volume_bias_ml": ba["bias"], "volume_loa_low_ml": ba["loa_low"],
                        "volume_loa_high_ml": ba["loa_high"]})
        rows.append(row)
    return pd.DataFrame(rows)


# ---- report ---------------------------------------------------------------------------------------

def agreement_report(table, out_dir: str | Path, *, title: str = "Reader agreement",
                     link_prefix: str = "") -> dict[str, Any]:
    """Per-pair summary table, Bland-Altman plot per reader pair and a Dice/HD95 box plot.

    Writes PNGs into ``out_dir`` and returns ``{"summary": DataFrame, "figures": [paths], "html": str}``
    (figures referenced relative to ``out_dir``).
    """
    import html as _html

    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from ..atomic import atomic_write_with

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary = summarise_pairs(table)
    good = table[table["error"] == ""]
    figures: list[Path] = []
    for (ra, rb), sub in good.groupby(["reader_a", "reader_b"], sort=True):
        if len(sub) >= 2:
            figures.append(bland_altman_plot(sub["volume_a_ml"], sub["volume_b_ml"],
                                             out / f"bland_altman_{ra}_vs_{rb}.png",
                                             title=f"Volume: {ra} vs {rb} (n={len(sub)})"))
    if not good.empty:
        pairs = [f"{a} vs {b}" for a, b in zip(good["reader_a"], good["reader_b"])]
        labels = sorted(set(pairs))
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
        for ax, col, name in ((axes[0], "dice", "Dice"), (axes[1], "hd95_mm", "HD95 (mm)")):
            data = [good.loc[[p == lab for p in pairs], col].dropna().to_numpy() for lab in labels]
            ax.boxplot(data)
            ax.set_xticks(range(1, len(labels) + 1), labels, rotation=30, ha="right", fontsize=8)
            ax.set_ylabel(name)
        fig.suptitle(title, fontsize=10)
        fig.tight_layout()
        box = out / "dice_hd95_by_pair.png"
        atomic_write_with(box, lambda tmp: fig.savefig(tmp, dpi=100, format="png"))
        plt.close(fig)
        figures.append(box)
    n_err = int((table["error"] != "").sum())
    cols = [c for c in ("reader_a", "reader_b", "cases", "dice_median", "dice_q1", "dice_q3", "hd95_mm_median",
                        "msd_mm_median", "volume_bias_ml", "volume_loa_low_ml", "volume_loa_high_ml")
            if c in summary.columns]
    body = [f"<p>{len(good)} reader-pair comparisons over {good[['patient_id', 'timepoint']].drop_duplicates().shape[0]}"
            f" cases; {n_err} failed.</p>",
            summary[cols].to_html(index=False, float_format=lambda v: f"{v:.3g}", border=0) if len(summary) else ""]
    body += [f"<img src='{_html.escape(link_prefix + p.name)}' alt='{_html.escape(p.stem)}'>" for p in figures]
    return {"summary": summary, "figures": figures, "html": "\n".join(body)}
