"""Demo stage: the study's result tables as CSV in ``<out>/tables/`` (what SPSS, R and Excel users open)."""

from __future__ import annotations

import html
import os

TITLE = "Result tables as CSV"


def run(ctx) -> dict:
    from ...study.tables_export import export_tables, table_names

    store = ctx.study
    if store is None:
        raise RuntimeError("no study (the import stage did not run)")
    out = ctx.out_dir / "tables"
    if not table_names(store):  # e.g. --stages study,tables
        ctx.add_section(TITLE, "<p>No result tables yet (no analysis stage ran).</p>")
        return {"folder": str(out), "tables": []}
    paths = export_tables(store, None, "csv", out, overwrite=True)  # a rerun refreshes them
    links = "".join(f"<li><a href='{html.escape(os.path.relpath(p, ctx.out_dir).replace(os.sep, '/'))}'>"
                    f"{html.escape(p.name)}</a></li>" for p in paths)
    ctx.add_section(TITLE, "<p>Every study table, exported with <code>nacresponse tables export STUDY --all "
                    f"--format csv --out {html.escape(str(out))}</code>:</p><ul>{links}</ul>")
    return {"folder": str(out), "tables": [p.stem for p in paths]}
