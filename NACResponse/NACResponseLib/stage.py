"""The study-level stage contract: what every domain's ``cohort.py`` entry point returns.

A stage plans its cases, computes each one (resumable, keyed by
:func:`NACResponseLib.provenance.result_digest`), writes its tables atomically with provenance,
and reports one shape: how many cases it computed, how many it reused unchanged from an earlier
run, and which failed and why.  The commands print it with :meth:`StageResult.message` and exit
with :attr:`StageResult.exit_code`, so every stage reads the same on the terminal and in Slicer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class StageResult:
    """Outcome of one study-level stage.

    ``failed``: case -> reason (bad-input failures of an earlier run are reported again).
    ``tables``: the tables this run (re)wrote; empty when the stored ones were already up to date.
    ``outputs``: what the stage hands its caller besides tables (frames, paths, counts).
    """

    stage: str
    done: int = 0
    reused: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    tables: list[str] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_summary(cls, stage: str, summary, **kwargs: Any) -> StageResult:
        """From a :class:`NACResponseLib.runner.RunSummary`."""
        return cls(stage, done=summary.computed, reused=summary.reused, failed=dict(summary.failures), **kwargs)

    @property
    def total(self) -> int:
        return self.done + self.reused + len(self.failed)

    @property
    def exit_code(self) -> int:
        """1 when some cases failed (the rest is kept), else 0."""
        return 1 if self.failed else 0

    def message(self, max_failures: int = 10) -> str:
        tables = f"tables {', '.join(self.tables)}" if self.tables else "tables unchanged"
        lines = [f"{self.stage}: {self.done} computed, {self.reused} reused, {len(self.failed)} failed; {tables}"]
        for i, (case, reason) in enumerate(self.failed.items()):
            if i == max_failures:
                lines.append(f"  ... and {len(self.failed) - max_failures} more failures")
                break
            lines.append(f"FAILED {case}: {reason}")
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        return {"stage": self.stage, "done": self.done, "reused": self.reused, "failed": dict(self.failed),
                "tables": list(self.tables)}
