"""``nacresponse demo``: the whole pipeline on the synthetic cohort, end to end, offline.

Stages live in ``demo/stages/sNN_<name>.py`` (run in NN order).  Each defines ``TITLE`` and
``run(ctx) -> dict`` and may add HTML sections to the demo report via ``ctx.add_section``.
A stage that fails is recorded in the summary and the demo goes on with the next one.
"""

from __future__ import annotations

import html
import importlib
import logging
import pkgutil
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..atomic import atomic_write_text
from ..provenance import strict_json

log = logging.getLogger(__name__)


@dataclass
class DemoContext:
    out_dir: Path
    n_patients: int = 40
    seed: int = 0
    jobs: int = 2
    quick: bool = False  # smaller settings, for tests
    study: Any = None  # StudyStore, set by the import stage
    source_dir: Path | None = None  # the generated raw cohort (folder convention)
    summary: dict[str, Any] = field(default_factory=dict)
    sections: list[tuple[str, str]] = field(default_factory=list)

    def add_section(self, title: str, body_html: str) -> None:
        self.sections.append((title, body_html))


def stage_modules(only: list[str] | None = None) -> list[Any]:
    from . import stages

    names = sorted(m.name for m in pkgutil.iter_modules(stages.__path__) if m.name.startswith("s"))
    mods = [importlib.import_module(f"{stages.__name__}.{n}") for n in names]
    if only:
        mods = [m for m in mods if m.__name__.rsplit("_", 1)[-1] in only or m.__name__.split(".")[-1] in only]
    return mods


def run_demo(ctx: DemoContext, only: list[str] | None = None) -> dict[str, Any]:
    ctx.out_dir.mkdir(parents=True, exist_ok=True)
    if ctx.study is None and (ctx.out_dir / "study" / "manifest.csv").exists():  # stages run on their own
        from ..study.store import StudyStore

        ctx.study = StudyStore(ctx.out_dir / "study")
    results: dict[str, Any] = {}
    for module in stage_modules(only):
        name = module.__name__.split(".")[-1]
        start = time.perf_counter()
        print(f"[demo] {module.TITLE} ...", flush=True)
        try:
            outcome = module.run(ctx) or {}
            results[name] = {"status": "ok", "seconds": round(time.perf_counter() - start, 1), **outcome}
        except Exception as exc:  # a failed stage is reported; later stages still run
            log.debug("stage %s failed", name, exc_info=True)
            results[name] = {"status": "failed", "error": f"{type(exc).__name__}: {exc}",
                             "traceback": traceback.format_exc(limit=5)}
            print(f"[demo] {module.TITLE} FAILED: {type(exc).__name__}: {exc}", flush=True)
        else:
            print(f"[demo] {module.TITLE}: done in {results[name]['seconds']} s", flush=True)
    ctx.summary["stages"] = results
    atomic_write_text(ctx.out_dir / "demo_summary.json", strict_json(ctx.summary, indent=2, default=str))
    write_report(ctx)
    return ctx.summary


def write_report(ctx: DemoContext) -> Path:
    """One HTML page with every stage's section (figures are PNG files beside it)."""
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>NACResponse demo report</title>",
             "<style>body{font-family:sans-serif;max-width:1100px;margin:auto}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:2px 6px;font-size:90%}img{max-width:100%}</style></head><body>",
             "<h1>NACResponse demo report</h1>",
             f"<p>Synthetic cohort: {ctx.n_patients} patients, seed {ctx.seed}. Stage status:</p><ul>"]
    for name, res in ctx.summary.get("stages", {}).items():
        parts.append(f"<li>{html.escape(name)}: {html.escape(res['status'])}"
                     + (f" — {html.escape(res.get('error', ''))}" if res["status"] != "ok" else "") + "</li>")
    parts.append("</ul>")
    for title, body in ctx.sections:
        parts.append(f"<h2>{html.escape(title)}</h2>{body}")
    parts.append("</body></html>")
    path = ctx.out_dir / "report.html"
    atomic_write_text(path, "\n".join(parts))
    return path
