"""ICC speed: vectorised NACResponseLib.readers.icc vs looping pingouin.intraclass_corr per feature.

Problem: 10,000 features x 250 cases x 2 readers (a large radiomics reader study).
pingouin is timed on a random SAMPLE of features and EXTRAPOLATED to all features (a full loop
would take many minutes); the sampled results are also checked against ours.  Both run in the
same process on the same data, so the ratio is meaningful even on a busy machine.

Run:  python benchmarks/icc_speed.py [--features 10000 --cases 250 --readers 2 --sample 40]
Target: ratio >= 1000x and ours < 1 s.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--features", type=int, default=10_000)
    ap.add_argument("--cases", type=int, default=250)
    ap.add_argument("--readers", type=int, default=2)
    ap.add_argument("--sample", type=int, default=40, help="pingouin features timed (then extrapolated)")
    ap.add_argument("--repeats", type=int, default=3, help="repeats of ours (best time reported)")
    args = ap.parse_args()

    import pingouin as pg

    from NACResponseLib.readers.icc import PINGOUIN_LABELS, icc_arrays

    rng = np.random.default_rng(0)
    truth = rng.normal(size=(args.cases, 1, args.features))
    noise = rng.uniform(0.05, 2.0, size=(1, 1, args.features))
    x = truth + noise * rng.normal(size=(args.cases, args.readers, args.features))

    icc_arrays(x[:, :, :10])  # warm-up (imports, scipy dispatch)
    ours = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        res = icc_arrays(x)
        ours.append(time.perf_counter() - t0)
    t_ours = min(ours)

    sample = rng.choice(args.features, size=min(args.sample, args.features), replace=False)
    targets = np.repeat(np.arange(args.cases), args.readers)
    raters = np.tile(np.arange(args.readers), args.cases)
    pg.options["round.column.CI95"] = None
    worst = 0.0
    t0 = time.perf_counter()
    for fi in sample:
        long = pd.DataFrame({"t": targets, "r": raters, "v": x[:, :, fi].ravel()})
        ref = pg.intraclass_corr(long, targets="t", raters="r", ratings="v").set_index("Type")
        worst = max(worst, abs(ref.loc[PINGOUIN_LABELS["ICC2"], "ICC"] - res["ICC2"]["icc"][fi]))
    t_sample = time.perf_counter() - t0
    t_pg = t_sample / len(sample) * args.features

    print(f"problem: {args.features} features x {args.cases} cases x {args.readers} readers (all six forms + CIs)")
    print(f"ours (vectorised numpy, best of {args.repeats}): {t_ours:.3f} s")
    print(f"pingouin loop: {t_sample:.2f} s for {len(sample)} sampled features -> "
          f"EXTRAPOLATED {t_pg:.1f} s for {args.features} features")
    print(f"speed-up: {t_pg / t_ours:.0f}x (target >= 1000x; ours target < 1 s)")
    print(f"max |ICC2 difference| on the sample: {worst:.2e}")


if __name__ == "__main__":
    main()
