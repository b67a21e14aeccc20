"""The case report as one self-contained HTML page (figures embedded as base64 PNG) and, on
request, a PDF (matplotlib's PdfPages: a text page of the numbers, then one page per figure;
chosen because matplotlib is already a core dependency).

Every table carries an ``id`` (``measurements-<reader>-<method>``, ``recist-lines``, ``models``,
``classes-<model>``, ``features-<model>``, ``mammograms``) so scripts and tests can read the numbers
back.
"""

from __future__ import annotations

import base64
import html
import io
import math
import re
from pathlib import Path
from typing import Any

from ..atomic import atomic_write_text, atomic_write_with
from ..provenance import strict_json
from ..study.model import TIMEPOINTS

STYLE = ("body{font-family:sans-serif;max-width:1100px;margin:auto;color:#222}table{border-collapse:collapse;"
         "margin:4px 0 10px}td,th{border:1px solid #bbb;padding:2px 6px;font-size:88%;text-align:left}"
         "img{max-width:100%}.missing{color:#8a5a00;font-style:italic}.problem{color:#a00}"
         "code{font-size:85%}section{page-break-inside:avoid}")


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _id(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", text)


def _num(value: Any, digits: int = 2) -> str:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return _e(value)
    return "" if v != v else f"{v:.{digits}f}"


def _table(table_id: str, header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table id='{_id(table_id)}'><tr>{head}</tr>{body}</table>"


def _img(png: bytes, alt: str) -> str:
    return f"<img alt='{_e(alt)}' src='data:image/png;base64,{base64.b64encode(png).decode()}'>"


def _missing(text: str) -> str:
    return f"<p class='missing'>{_e(text)}</p>"


def _patient(case) -> str:
    p = case["patient"]
    rows = [["timepoints", _e(", ".join(f"{t} ({TIMEPOINTS.get(t, t)})" for t in p["timepoints"]))],
            ["delineations", _e(", ".join(p["readers"]) or "none")]]
    rows += [[_e(k), _e(v)] for k, v in p["clinical"].items()]
    return _table("patient", ["", ""], rows)


def _images(case) -> str:
    sec = case["images"]
    out = [_missing(sec["missing"])] if "missing" in sec else (
        [_img(png, f"delineations {key}") for key, png in sec["figures"]] + [f"<p>{_e(sec['caption'])}</p>"])
    return "".join(out + [_missing(n) for n in sec.get("notes", [])])


def _measurements(case) -> str:
    sec = case["measurements"]
    if "missing" in sec:
        return _missing(sec["missing"])
    out = []
    for s in sec["series"]:
        lead = " (leads the report)" if (s["reader"], s["method"]) == tuple(sec["primary"]) else ""
        out.append(f"<h3>{_e(s['reader'])} ({_e(s['method'])}){lead}</h3>")
        size, change, header = _size(s["rows"])
        rows = [[_e(r["timepoint"]), _num(r[size]), _num(r["longest_inplane_diameter_mm"]), _num(r[change], 1),
                 _num(r["diameter_change_pct"], 1), _e(r["recist"])] for r in s["rows"]]
        out.append(_table(f"measurements-{s['reader']}-{s['method']}",
                          ["timepoint", header[0], "longest diameter (mm)", header[1], "diameter change (%)",
                           "RECIST 1.1"], rows))
    lines = case["images"].get("recist", [])
    if lines:
        out.append("<h3>RECIST lines drawn on the images</h3>")
        out.append(_table("recist-lines", ["timepoint", "image", "delineation", "slice", "longest diameter (mm)",
                                           "from (x, y mm)", "to (x, y mm)"],
                          [[_e(r["timepoint"]), _e(r["image"]), _e(f"{r['reader']} ({r['method']})"),
                            _e("" if r["slice"] is None else r["slice"]), _num(r["length_mm"]), _point(r["start_mm"]),
                            _point(r["end_mm"])] for r in lines]))
    return "".join(out)


def _size(rows) -> tuple[str, str, tuple[str, str]]:
    """A 2D outline (ultrasound) has an area, not a volume: the size and change columns shown, and
    their headers."""
    if rows and all(_finite(r.get("area_mm2")) and not _finite(r.get("volume_ml")) for r in rows):
        return "area_mm2", "area_change_pct", ("area (mm²)", "area change (%)")
    return "volume_ml", "volume_change_pct", ("volume (ml)", "volume change (%)")


def _finite(value) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _point(xy) -> str:
    return f"({_num(xy[0], 1)}, {_num(xy[1], 1)})"


def _models(case) -> str:
    sec = case["models"]
    if "missing" in sec:
        return _missing(sec["missing"])
    rows, details = [], []
    for m in sec["entries"]:
        prob = _num(m["probability"], 3) if "probability" in m else ""
        note = m.get("error") or m.get("missing") or ""
        rows.append([_e(m["name"]), _e(m.get("kind")), _e(m.get("target")), _e(m.get("timepoint") or "all"), prob,
                     f"<span class='{'problem' if 'error' in m else 'missing'}'>{_e(note)}</span>" if note else ""])
        if "probability" not in m:
            continue
        details.append(f"<h3>{_e(m['name'])}: probability {prob}</h3>")
        details.append(_table(f"classes-{m['name']}", ["operating point", "threshold", "class"],
                              [[_e(k), _num(v["threshold"], 3), _e(v["label"])] for k, v in m["classes"].items()]))
        if m.get("top_features"):
            details.append(_table(f"features-{m['name']}", ["feature", "value", "contribution"],
                                  [[_e(t["feature"]), _num(t["value"], 3), _num(t["contribution"], 3)]
                                   for t in m["top_features"]]))
        details.append(f"<p>Contributions: {_e(m.get('contribution_kind'))}.</p>")
    return _table("models", ["model", "kind", "target", "features at", "probability", "note"], rows) + "".join(details)


def _gradcam(case) -> str:
    sec = case["gradcam"]
    if "missing" in sec:
        return _missing(sec["missing"])
    return "".join(_img(png, f"Grad-CAM {name}") for name, png in sec["figures"]) + (
        "<p>Grad-CAM of the model's score over the image it saw (red: regions that raised the score), "
        "on the slice holding most of the map; the delineation is outlined.</p>")


def _mammograms(case) -> str:
    sec = case["mammograms"]
    if "missing" in sec:
        return _missing(sec["missing"])
    rows, figs = [], []
    for side in sec["sides"]:
        r = side["row"]
        rows.append([_e(r["laterality"]), _num(r["pre_extent_mm"] / 10.0), _num(r["post_extent_mm"] / 10.0),
                     _num(r["change_pct"], 1), _e(r["mc_category"]), _e(r["tumour_recist"]),
                     "yes" if r["resmin_flag"] else "no", _e(r["statement"])])
        if side.get("figure"):
            figs.append(_img(side["figure"], f"mammograms {r['laterality']}") + f"<p>{_e(r['statement'])}</p>")
        if side.get("error"):
            figs.append(f"<p class='problem'>{_e(side['error'])}</p>")
    return (_table("mammograms", ["side", "MC extent pre (cm)", "MC extent post (cm)", "change (%)", "MC category",
                                  "tumour RECIST", "RESMIN", "statement"], rows)
            + "".join(figs) + f"<p>Rule: {_e(sec['rule'])}. RESMIN: tumour RECIST PR/CR while the MC extent is "
            "SD/PD - the residual extent may need removal.</p>")


def _provenance(case) -> str:
    p = case["provenance"]
    out = [f"<p>Made {_e(p['created'])} from <code>{_e(p['study'])}</code>.</p>",
           _table("versions", ["package", "version"], [[_e(k), _e(v)] for k, v in p["versions"].items()])]
    model_rows = [[_e(name), _e(f), f"<code>{_e(h)}</code>"] for name, hashes in p["models"].items()
                  for f, h in hashes.items()]
    if model_rows:
        out.append(_table("model-hashes", ["model", "file", "SHA-256"], model_rows))
    out.append(_table("input-hashes", ["input file", "SHA-256"],
                      [[f"<code>{_e(k)}</code>", f"<code>{_e(v)}</code>"] for k, v in p["inputs_sha256"].items()]))
    out.append(_table("tables", ["table", "made by", "when", "parameters SHA-256", "file SHA-256"],
                      [[_e(k), _e(v["step"]), _e(v["created"]), f"<code>{_e(v['parameters_sha256'])}</code>",
                        f"<code>{_e(v['sha256'])}</code>"] for k, v in p["tables"].items()]))
    out.append("<script type='application/json' id='provenance-json'>"
               + strict_json(p).replace("</", "<\\/") + "</script>")
    return "".join(out)


SECTIONS = (("patient", "Patient", _patient), ("images", "Images and delineations", _images),
            ("measurements", "Volume, longest diameter and RECIST", _measurements),
            ("models", "Response predictions", _models), ("gradcam", "Grad-CAM maps", _gradcam),
            ("mammograms", "Mammograms: microcalcifications before and after NAC", _mammograms),
            ("provenance", "Provenance", _provenance))


def render_html(case: dict[str, Any]) -> str:
    pid = case["patient"]["patient_id"]
    parts = ["<!doctype html><html><head><meta charset='utf-8'>",
             f"<title>Case report {_e(pid)}</title><style>{STYLE}</style></head><body>",
             f"<h1>Case report: patient {_e(pid)}</h1>"]
    if case["problems"]:
        parts.append("<p class='problem'>Parts of this report could not be made: "
                     + "; ".join(_e(p) for p in case["problems"]) + "</p>")
    for key, title, fn in SECTIONS:
        parts.append(f"<section id='section-{key}'><h2>{_e(title)}</h2>{fn(case)}</section>")
    parts.append("<p><small>Research software (NACResponse); not a medical device.</small></p></body></html>")
    return "\n".join(parts)


def _text_lines(case) -> list[str]:
    """The numbers of the page as plain text, for the PDF's first page."""
    lines = [f"Case report: patient {case['patient']['patient_id']}", ""]
    sec = case["measurements"]
    lines.append("Volume, longest diameter and RECIST")
    for s in sec.get("series", []):
        lines.append(f"  {s['reader']} ({s['method']})")
        size = _size(s["rows"])[0]
        unit = "mm2" if size == "area_mm2" else "ml"
        for r in s["rows"]:
            lines.append(f"    {r['timepoint']:<6} {_num(r[size]):>8} {unit:<3} "
                         f"{_num(r['longest_inplane_diameter_mm']):>7} mm  {r['recist']}")
    if "missing" in sec:
        lines.append(f"  {sec['missing']}")
    for r in case["images"].get("recist", []):
        where = "" if r["slice"] is None else f", slice {r['slice']}"
        lines.append(f"  RECIST line {r['timepoint']:<6} {r['image']} {r['reader']} ({r['method']}){where}: "
                     f"{_num(r['length_mm'])} mm")
    lines += ["", "Response predictions"]
    for m in case["models"].get("entries", []):
        if "probability" in m:
            cls = ", ".join(f"{k}: {v['label']}" for k, v in m["classes"].items())
            lines.append(f"  {m['name']}: p = {m['probability']:.3f} [{cls}]")
        else:
            lines.append(f"  {m['name']}: {m.get('error') or m.get('missing')}")
    if "missing" in case["models"]:
        lines.append(f"  {case['models']['missing']}")
    lines += ["", "Mammograms"]
    for side in case["mammograms"].get("sides", []):
        lines.append(f"  {side['row']['statement']}")
    if "missing" in case["mammograms"]:
        lines.append(f"  {case['mammograms']['missing']}")
    p = case["provenance"]
    lines += ["", f"Made {p['created']}; nacresponse {p['versions'].get('nacresponse')}; "
              f"{len(p['inputs_sha256'])} input files hashed (SHA-256, listed in the HTML page)."]
    return lines


def _figures(case) -> list[bytes]:
    figs = [png for _, png in case["images"].get("figures", []) + case["gradcam"].get("figures", [])]
    figs += [s.get("figure") for s in case["mammograms"].get("sides", [])]
    return [f for f in figs if f]


def write_pdf(case: dict[str, Any], path: str | Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.image as mpimg
    import matplotlib.pyplot as plt
    from matplotlib.backends.backend_pdf import PdfPages

    def write(tmp: Path) -> None:
        with PdfPages(tmp) as pdf:
            lines = _text_lines(case)
            for start in range(0, len(lines), 60):
                fig = plt.figure(figsize=(8.27, 11.69))
                fig.text(0.06, 0.97, "\n".join(lines[start:start + 60]), va="top", family="monospace", fontsize=7.5)
                pdf.savefig(fig)
                plt.close(fig)
            for png in _figures(case):
                pixels = mpimg.imread(io.BytesIO(png), format="png")
                fig = plt.figure(figsize=(11.69, 8.27))
                ax = fig.add_axes((0.02, 0.02, 0.96, 0.96))
                ax.imshow(pixels)
                ax.axis("off")
                pdf.savefig(fig)
                plt.close(fig)

    path = Path(path)
    atomic_write_with(path, write)
    return path


def write_html(case: dict[str, Any], path: str | Path) -> Path:
    path = Path(path)
    atomic_write_text(path, render_html(case))
    return path
