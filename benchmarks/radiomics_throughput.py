"""Radiomics throughput: a plain pyradiomics loop vs our cohort runner (process pool, Dask, rerun).

Synthetic cohort at realistic size: 1 mm isotropic grid, tumours 1-5 cm, N patients x 2
timepoints x 3 sequences (DCE early, DCE late, T2w) x 2 readers, the default breast parameter
file (1,130 features per ROI).  In one run it times

  (a) a serial loop calling ``RadiomicsFeatureExtractor.execute`` per (image, mask), the anchor;
  (b) our runner with 2 local worker processes;
  (c) our runner on a 2-worker Dask ``LocalCluster`` (cluster start-up, including the workers'
      pyradiomics import, reported separately);
  (d) a rerun of (b) with everything already finished;

checks that (a), (b) and (c) give identical values, and prints a/b, a/c, a/d and peak memory,
with a/b on the last line.  It also times one whole case (12 ROIs) with 2 workers.  For (b) and
(c) it says where the wall time went (from the task records: worker busy fraction, start-up,
how far apart the workers ran out of work, time spent writing the tables).  Note that the
anchor (a) runs SimpleITK with its default thread count (resampling and LoG filters use both
cores, ~6 % faster than one thread), while the runner's workers use one thread each.

    .venv/bin/python benchmarks/radiomics_throughput.py [--patients 10] [--jobs 2]

Timings are only comparable within one run (ratios), and only on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import logging
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path


def _copy(store, dest):
    from NACResponseLib.study.store import StudyStore

    shutil.rmtree(dest, ignore_errors=True)  # a --workdir reused from an earlier run
    shutil.copytree(store.root, dest, ignore=shutil.ignore_patterns("work", "tables"))
    return StudyStore(dest)


def _utilisation(store, summary, t_start: float, t_end: float) -> str:
    """Where the wall time of a pool run went, from the task records' start times and durations."""
    import json

    records = [json.loads(p.read_text()) for p in (store.root / "work" / "radiomics").glob("*.json")]
    records = [r for r in records if r.get("status") == "done" and "started" in r]
    if not records:
        return "no task records"
    busy = sum(r["seconds"] for r in records)
    first = min(r["started"] for r in records)
    ends: dict[int, float] = {}
    for r in records:
        ends[r["pid"]] = max(ends.get(r["pid"], 0.0), r["started"] + r["seconds"])
    last = max(ends.values())
    return (f"workers busy {busy / (summary.workers * (t_end - t_start)):.0%} of the wall time; "
            f"first task started after {first - t_start:.1f} s, workers ran out of work "
            f"{last - min(ends.values()):.1f} s apart, tables written {t_end - last:.1f} s after the last task")


def _peak_mb() -> tuple[float, float]:
    self_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    child_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return self_kb / 1024, child_kb / 1024


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--patients", type=int, default=10)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--params", default="breast", help="parameter set (default: the breast protocol)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args(argv)

    from NACResponseLib.demo.synthetic import generate_cohort
    from NACResponseLib.radiomics import (
        extract_case,
        extract_cohort,
        load_params,
        plan_rois,
        quiet_pyradiomics,
    )
    from NACResponseLib.runner import local_cluster
    from NACResponseLib.study.importers import import_folder

    quiet_pyradiomics()
    logging.getLogger("distributed").setLevel(logging.ERROR)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="nac_radiomics_bench_"))
    images, readers = ["dce_early", "dce_late", "t2w"], ["R1", "R2"]

    t0 = time.perf_counter()
    source = work / "source"
    if not (source / "ground_truth.json").exists():
        generate_cohort(source, n_patients=args.patients, seed=args.seed, size=(96, 96, 72), spacing=(1.0, 1.0, 1.0),
                        tumour_diameter_mm=(10.0, 50.0), timepoints=("pre", "post"), mc_fraction=0.0)
    base = import_folder(source, work / "study_base") if not (work / "study_base").exists() else None
    if base is None:
        from NACResponseLib.study.store import StudyStore

        base = StudyStore(work / "study_base")
    rois = plan_rois(base, images=images, readers=readers)
    print(f"cohort: {args.patients} patients, {len(rois)} ROIs ({len(images)} sequences x {len(readers)} readers x "
          f"2 timepoints), set-up {time.perf_counter() - t0:.0f} s; work folder {work}")

    # (a) what users write today: one extractor, a loop over masks
    from radiomics.featureextractor import RadiomicsFeatureExtractor

    params = load_params(args.params)
    extractor = RadiomicsFeatureExtractor(params)
    t = time.perf_counter()
    plain = {}
    for r in rois:
        out = extractor.execute(str(base.path(r.image_path)), str(base.path(r.mask_path)), label=r.label)
        plain[r.key] = {k: float(v) for k, v in out.items() if not k.startswith("diagnostics_")}
    time_a = time.perf_counter() - t
    print(f"(a) plain serial loop:           {time_a:8.1f} s  ({time_a / len(rois):.2f} s per ROI)")

    # (b) our runner, local process pool
    store_b = _copy(base, work / "study_b")
    t, wall = time.perf_counter(), time.time()
    res_b = extract_cohort(store_b, args.params, jobs=args.jobs, images=images, readers=readers, progress_mode="none")
    time_b = time.perf_counter() - t
    print(f"(b) runner, {args.jobs} processes:          {time_b:8.1f} s  [{res_b.summary.message().splitlines()[0]}]")
    print(f"    {_utilisation(store_b, res_b.summary, wall, wall + time_b)}")

    # (c) our runner on a Dask LocalCluster
    store_c = _copy(base, work / "study_c")
    t = time.perf_counter()
    with local_cluster(args.jobs, preload=["NACResponseLib.radiomics.extractor", "radiomics.featureextractor"]) as cluster:
        start_c = time.perf_counter() - t
        t, wall = time.perf_counter(), time.time()
        res_c = extract_cohort(store_c, args.params, scheduler=cluster.scheduler_address, images=images,
                               readers=readers, progress_mode="none")
        time_c = time.perf_counter() - t
    print(f"(c) runner, Dask {args.jobs} workers:      {time_c:8.1f} s  (+{start_c:.1f} s cluster start-up)")
    print(f"    {_utilisation(store_c, res_c.summary, wall, wall + time_c)}")

    # (d) rerun of (b): everything finished already
    t = time.perf_counter()
    res_d = extract_cohort(store_b, args.params, jobs=args.jobs, images=images, readers=readers, progress_mode="none")
    time_d = time.perf_counter() - t
    t = time.perf_counter()
    shapes = [res_d.long.shape, res_d.wide.shape]  # the stored tables, read on first access
    time_read = time.perf_counter() - t
    kept = "stored tables kept, not rewritten" if res_d.reused_tables else "tables rebuilt"
    print(f"(d) rerun of (b), all finished:  {time_d:8.2f} s  ({res_d.summary.reused} reused, {kept}; "
          f"reading them back {time_read:.2f} s more: long {shapes[0]}, wide {shapes[1]})")

    # identical values?
    worst = 0.0
    for res in (res_b, res_c):
        assert set(res.summary.results) == set(plain), "runner and plain loop extracted different ROI sets"
        for key, feats in plain.items():
            ours = res.summary.results[key]
            assert set(ours) == set(feats), f"{key}: different feature names"
            for name, v in feats.items():
                w = ours[name]
                if v != w and not (v != v and w != w):
                    worst = max(worst, abs(v - w) / max(abs(v), 1e-300))
    verdict = "identical" if worst == 0 else f"max relative difference {worst:.2e}"
    print(f"values (a) vs (b) vs (c): {verdict} over {len(plain)} ROIs x {len(next(iter(plain.values())))} features")

    # one whole case (12 ROIs), as the GUI runs it for per-case prediction
    store_e = _copy(base, work / "study_case")
    pid = rois[0].patient_id
    t = time.perf_counter()
    case = extract_case(store_e, pid, args.params, jobs=args.jobs, images=images, readers=readers)
    time_case = time.perf_counter() - t
    print(f"one case ({len(case)} ROIs) with {args.jobs} processes: {time_case:.1f} s (target <= 8 s)")

    self_mb, child_mb = _peak_mb()
    print(f"peak memory: this process {self_mb:.0f} MB, largest pool worker {child_mb:.0f} MB")
    print(f"a/c = {time_a / time_c:.2f}  (target >= 1.7)")
    print(f"a/d = {time_a / time_d:.1f}  (target >= 50)")
    print(f"a/b = {time_a / time_b:.2f}  (target >= 1.8 on 2 cores)")
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
