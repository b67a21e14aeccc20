"""Study-level reader steps the commands call: spatial agreement and the ICC feature filter.

The per-case measures live beside this file (agreement.py: Dice, surface distances, volumes;
icc.py: the ICC forms; reproducibility.py: ICC over readers and the whitelist; perturbation.py:
single-reader perturbations); here they are run over a study, written as tables with provenance
and reported as one :class:`~NACResponseLib.stage.StageResult`.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import InputError
from ..stage import StageResult
from ..study.store import StudyStore
from .agreement import agreement_report, pairwise_agreement, segmentation_sets
from .icc import normalise_form
from .perturbation import perturbation_features
from .reproducibility import (
    DEFAULT_FORM,
    DEFAULT_THRESHOLD,
    icc_filter,
    icc_report,
    perturbation_icc,
    radiomics_icc,
    write_whitelist,
)


def _case_of(failure_key: str) -> tuple[str, str]:
    """(patient, timepoint) of a ``"<patient>/<timepoint> <reader>"`` failure key."""
    pid, _, tp = failure_key.split(" ", 1)[0].rpartition("/")
    return pid, tp


def run_agreement(store: StudyStore, *, session: str | None = None, readers: Sequence[str] | None = None,
                  extra: Sequence[tuple[str, str]] = (), consensus: str | None = None,
                  timepoints: Sequence[str] | None = None, progress_mode: str | None = None,
                  cancel=None) -> StageResult:
    """Agreement of a study (or of one reader session): tables ``agreement`` and ``agreement_summary``
    with provenance, figures and HTML under ``reports/agreement``.  One case is one reader pair on
    one patient and timepoint; ``outputs``: ``table``, ``summary``, ``figures``, ``html``.

    ``consensus`` ("staple"/"majority") first builds that consensus reader from the same
    segmentations and adds it to the comparison; ``extra`` adds (reader, method) pairs such as
    ``("GT", "reference")``.  A reader with several segmentations of one method on a case
    (ambiguous) is left out of that case and listed in ``failed``.  Masks of a reader session
    that is not complete are refused, with or without ``session`` (blinding).
    """
    from dataclasses import asdict

    from ..atomic import atomic_write_text
    from ..progress import Progress
    from ..provenance import collect
    from .sessions import refuse_hidden_masks

    sess = None
    ambiguous: dict[str, str] = {}  # "<patient>/<tp> <reader>" -> why that reader is left out of the case
    if session:
        from .sessions import ReaderSession, session_segmentation_sets

        sess = ReaderSession(store, session)
        sets = session_segmentation_sets(sess)
        if extra:
            more = segmentation_sets(store.cohort, readers=[], methods=[], extra=extra, failed=ambiguous)
            for key, by_reader in more.items():
                if key in sets:
                    sets[key].update(by_reader)
            ambiguous = {k: v for k, v in ambiguous.items() if _case_of(k) in sets}
    else:
        sets = segmentation_sets(store.cohort, readers, extra=extra, failed=ambiguous)
    if timepoints:
        sets = {k: v for k, v in sets.items() if k[1] in timepoints}
        ambiguous = {k: v for k, v in ambiguous.items() if _case_of(k)[1] in timepoints}
    if not sets:
        more = f"; left out: {ambiguous}" if ambiguous else ""
        raise InputError(f"{store.root}: no segmentations to compare (readers {readers or 'all manual'}){more}")
    refuse_hidden_masks(store, [s.path for v in sets.values() for s in v.values()], "agreement")
    if consensus:
        from .consensus import DEFAULT_READER_IDS, build_consensus

        base = {k: {r: s for r, s in v.items() if s.method == "manual"} for k, v in sets.items()}
        base = {k: v for k, v in base.items() if len(v) >= 2}
        build_consensus(store, base, method=consensus, cancel=cancel)
        cid = DEFAULT_READER_IDS[consensus]
        for (pid, tp), by_reader in sets.items():
            for seg in store.cohort[pid].timepoint(tp).segmentations_by(reader=cid, method="consensus"):
                by_reader[cid] = seg
    with Progress(len(sets), "agreement", mode=progress_mode) as progress:
        table = pairwise_agreement(store, sets, progress=progress, cancel=cancel)
    params = {"session": session, "readers": list(readers or []), "extra": [list(e) for e in extra],
              "consensus": consensus, "timepoints": list(timepoints or []),
              "conventions": {"hd95": "max of directed 95th percentiles", "msd": "symmetric pooled mean"}}
    inputs = sorted({store.path(s.path) for v in sets.values() for s in v.values()})
    extra_prov = {"session": {"name": sess.name, "spec": asdict(sess.spec), "status": sess.status()}} if sess else {}
    prov = collect(step="agreement", parameters=params, inputs=inputs, base=store.root, extra=extra_prov)
    report = agreement_report(table, store.reports_dir / "agreement")
    store.write_tables({"agreement": table, "agreement_summary": report["summary"]}, prov)
    from ..study.tables_export import export_beside_report

    tables = export_beside_report(store, ["agreement", "agreement_summary"], store.reports_dir / "agreement")
    atomic_write_text(store.reports_dir / "agreement" / "agreement.html",
                      "<!doctype html><meta charset='utf-8'><title>Reader agreement</title>"
                      "<h1>Reader agreement</h1>" + report["html"] + tables)
    bad = table["error"] != ""
    failed = {f"{r.patient_id}/{r.timepoint} {r.reader_a} vs {r.reader_b}": r.error for r in table[bad].itertuples()}
    failed.update(ambiguous)
    return StageResult("agreement", done=int((~bad).sum()), failed=failed, tables=["agreement", "agreement_summary"],
                       outputs={"table": table, "summary": report["summary"], "figures": report["figures"],
                                "html": report["html"]})


def run_icc(store: StudyStore, *, table: str = "radiomics", form: str = DEFAULT_FORM, threshold: float = DEFAULT_THRESHOLD,
            use_ci_lower: bool = False, session: str | None = None, readers: Sequence[str] | None = None,
            timepoints: Sequence[str] | None = None, perturb: bool = False, perturb_reader: str | None = None,
            images: Sequence[str] = ("dce_early",), params=None, seed: int = 0, progress_mode: str | None = None,
            cancel=None) -> StageResult:
    """ICC filter of a study: reads the radiomics table (or re-extracts perturbations for a single
    reader), writes ``icc`` and ``icc_whitelist`` with provenance, and figures under ``reports/icc``.

    With ``session`` the readers default to the session's readers and its spec goes into the
    provenance.  ``done`` counts the features whose ICC was computed, ``failed`` the cases whose
    perturbations could not be extracted; ``outputs``: ``features``, ``kept``, ``fraction_kept``,
    ``html``, ``figures``, ``by_group``.
    """
    from ..atomic import atomic_write_text

    form = normalise_form(form)
    sess = None
    if session:
        from .sessions import ReaderSession

        sess = ReaderSession(store, session)
        readers = readers or sess.spec.readers
    failed: dict[str, str] = {}
    if perturb:
        from ..progress import Progress

        n_cases = sum(1 for p in store.cohort for t in p.timepoints.values()
                      if not timepoints or t.name in timepoints)
        with Progress(n_cases, "perturbation radiomics", mode=progress_mode) as progress:
            features, failed = perturbation_features(store, reader=perturb_reader, images=images,
                                                     timepoints=timepoints, params=params, seed=seed,
                                                     progress=progress, cancel=cancel)
        if features.empty:
            raise InputError(f"{store.root}: no perturbation could be extracted ({failed})")
        icc_long = perturbation_icc(features)
        inputs: list[str] = []
    else:
        from .sessions import refuse_hidden_masks

        frame = store.read_table(table)
        used = set(map(tuple, frame[["patient_id", "timepoint", "reader"]].astype(str).drop_duplicates().values))
        refuse_hidden_masks(store, [s.path for p in store.cohort for t in p.timepoints.values() for s in t.segmentations
                                    if (p.patient_id, t.name, s.reader) in used and (not readers or s.reader in readers)],
                            "icc")
        icc_long = radiomics_icc(frame, readers=readers, timepoints=timepoints)
        inputs = [table]
    whitelist = icc_filter(icc_long, form=form, threshold=threshold, use_ci_lower=use_ci_lower)
    parameters = {"form": form, "threshold": threshold, "use_ci_lower": use_ci_lower, "table": table,
                  "readers": list(readers or []), "timepoints": list(timepoints or []), "perturb": perturb,
                  "images": list(images) if perturb else None, "seed": seed if perturb else None}
    summary = write_whitelist(store, whitelist, icc_long, parameters=parameters, session=sess, inputs=inputs)
    report = icc_report(icc_long, whitelist, store.reports_dir / "icc", form=form, threshold=threshold,
                        use_ci_lower=use_ci_lower)
    from ..study.tables_export import export_beside_report

    tables = export_beside_report(store, [*inputs, "icc", "icc_whitelist"], store.reports_dir / "icc")
    atomic_write_text(store.reports_dir / "icc" / "icc.html", "<!doctype html><meta charset='utf-8'>"
                      "<title>Feature reproducibility (ICC)</title><h1>Feature reproducibility (ICC)</h1>"
                      + report["html"] + tables)
    return StageResult("icc", done=summary["features"], failed=failed, tables=["icc_whitelist", "icc"],
                       outputs={**summary, "html": report["html"], "figures": report["figures"],
                                "by_group": report["by_group"]})
