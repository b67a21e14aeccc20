"""The wide-column grammar: how a feature column of a wide table (one row per patient and reader)
is named, built, parsed, and which reader id a row carries.

Every wide table (``radiomics_wide``, ``deep_resnet50``, ``deep_bottleneck``) and every reader of
one (the ICC whitelist, model inputs, stepwise timepoint filters) goes through this module::

    <timepoint>__[<image>__]<feature>                    value at one timepoint
    delta_abs__<tpA>_<tpB>__[<image>__]<feature>         B - A      (A before B)
    delta_rel__<tpA>_<tpB>__[<image>__]<feature>         (B - A) / |A|

* ``<image>`` is the study image key the feature was computed on (``dce_early``, ``dwi_b800``);
  features of several channels at once (deep features) have none.
* ``<feature>`` is the extractor's own name (``original_firstorder_Mean``,
  ``wavelet-LLH_glcm_Contrast``, ``resnet50_0000``, ``bottleneck_mean_017``).
* ``<image>__<feature>`` is the *feature id*: what reproducibility (ICC) is computed for and what
  the whitelist keeps, whichever timepoint or delta a column holds.
* Parts never contain ``__`` and timepoints never contain ``_`` (the delta joins two with one);
  :func:`build` refuses names that would not parse back.  A column without ``__`` (``age``,
  ``ki67``) is not a wide feature column (:func:`parse` returns None).

Reader ids: a reader who segmented with one method keeps their name (``R1``); a reader with
several methods gets one row per method, ``<reader>.<method>`` (``R1.manual``, ``R1.monai``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

SEP = "__"
VALUE = "value"
DELTA_ABS, DELTA_REL = "delta_abs", "delta_rel"
DELTA_KINDS = (DELTA_ABS, DELTA_REL)
KINDS = (VALUE, *DELTA_KINDS)


@dataclass(frozen=True)
class WideColumn:
    """One wide feature column: ``timepoints`` has one entry for a value, (A, B) for a delta."""

    kind: str
    timepoints: tuple[str, ...]
    feature: str
    image: str | None = None

    @property
    def feature_id(self) -> str | None:
        """``<image>__<feature>``; None for features without an image (deep features)."""
        return None if self.image is None else f"{self.image}{SEP}{self.feature}"

    @property
    def block(self) -> str:
        """The column's prefix before the feature id: ``pre`` or ``delta_abs__pre_post``."""
        if self.kind == VALUE:
            return self.timepoints[0]
        return f"{self.kind}{SEP}{self.timepoints[0]}_{self.timepoints[1]}"


def _check_part(value: str, what: str, name: str) -> None:
    if not value or SEP in value:
        raise ValueError(f"wide column {name!r}: the {what} {value!r} is empty or contains {SEP!r}")


def build(column: WideColumn) -> str:
    """The column name of ``column`` (ValueError when it would not parse back to the same parts)."""
    kind, tps = column.kind, column.timepoints
    if kind not in KINDS:
        raise ValueError(f"unknown wide-column kind {kind!r}; one of {KINDS}")
    if len(tps) != (1 if kind == VALUE else 2):
        raise ValueError(f"a {kind} column needs {1 if kind == VALUE else 2} timepoint(s), got {tps}")
    for tp in tps:
        _check_part(tp, "timepoint", str(column))
        if "_" in tp or tp in DELTA_KINDS:
            raise ValueError(f"timepoint {tp!r} cannot be named in a wide column (no '_' allowed)")
    _check_part(column.feature, "feature", str(column))
    if column.image is not None:
        _check_part(column.image, "image", str(column))
    tail = column.feature if column.image is None else f"{column.image}{SEP}{column.feature}"
    return f"{column.block}{SEP}{tail}"


def value_column(timepoint: str, feature: str, image: str | None = None) -> str:
    return build(WideColumn(VALUE, (timepoint,), feature, image))


def delta_column(kind: str, tp_a: str, tp_b: str, feature: str, image: str | None = None) -> str:
    return build(WideColumn(kind, (tp_a, tp_b), feature, image))


def parse(name: str) -> WideColumn | None:
    """The parts of a wide feature column, or None for any other column (ids, clinical variables)."""
    parts = str(name).split(SEP)
    if parts[0] in DELTA_KINDS:
        kind, rest = parts[0], parts[2:]
        tps = tuple(parts[1].split("_")) if len(parts) > 1 else ()
        if len(tps) != 2:
            return None
    else:
        kind, tps, rest = VALUE, (parts[0],), parts[1:]
    if not 1 <= len(rest) <= 2 or not all(tps) or not all(rest):
        return None
    image, feature = (None, rest[0]) if len(rest) == 1 else (rest[0], rest[1])
    return WideColumn(kind, tps, feature, image)


def column_timepoints(name: str) -> tuple[str, ...]:
    """Timepoints a column depends on (``()`` for a column that is not a wide feature column)."""
    col = parse(name)
    return () if col is None else col.timepoints


def feature_id(name: str) -> str | None:
    """``<image>__<feature>`` of a wide column; None for deep features and non-feature columns."""
    col = parse(name)
    return None if col is None else col.feature_id


def split_feature_id(fid: str) -> tuple[str, str]:
    """``dce_early__original_firstorder_Mean`` -> (``dce_early``, ``original_firstorder_Mean``)."""
    image, sep, feature = str(fid).partition(SEP)
    if not sep or not image or not feature or SEP in feature:
        raise ValueError(f"not a feature id <image>{SEP}<feature>: {fid!r}")
    return image, feature


def make_feature_id(image: str, feature: str) -> str:
    _check_part(image, "image", f"{image}{SEP}{feature}")
    _check_part(feature, "feature", f"{image}{SEP}{feature}")
    return f"{image}{SEP}{feature}"


def block_columns(columns: Iterable[str], block: str) -> list[str]:
    """Columns of one block (``pre``, ``post``, ``delta_abs__pre_post``), in their order."""
    out = []
    for c in columns:
        col = parse(c)
        if col is not None and col.block == block:
            out.append(c)
    return out


def wide_reader_ids(pairs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """(reader, method) -> the reader id of the wide rows (see the module docstring)."""
    pairs = [(str(r), str(m)) for r, m in pairs]
    methods: dict[str, set[str]] = {}
    for r, m in pairs:
        methods.setdefault(r, set()).add(m)
    return {(r, m): r if len(methods[r]) == 1 else f"{r}.{m}" for r, m in pairs}


def reader_selected(wanted: Iterable[str] | None, reader: str, wide_id: str) -> bool:
    """A reader filter names a reader (all their methods) or a wide id (``R1.monai``)."""
    if not wanted:
        return True
    wanted = set(wanted)
    return reader in wanted or wide_id in wanted
