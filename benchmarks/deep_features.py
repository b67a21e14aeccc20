"""ResNet-50 2.5D descriptors: slices per second at 224x224 on this machine's CPU.

Anchor (measured in the same run): the naive path, i.e. the eager model, batch 1, fp32,
default layout and settings, under ``torch.no_grad``.  Against it: each engine mode of
``NACResponseLib.deep.engine.FeatureEngine`` (channels-last, batched, ``inference_mode``,
folded batch norm / TorchScript freezing / optionally ``torch.compile``), with the cosine
similarity of its features to the naive ones on the same inputs.  Rounds are interleaved and
the best round of each path is kept, which damps the noise of a shared machine; slices per
CPU-second of this process are printed too (less sensitive to other processes).

    python benchmarks/deep_features.py [--weights FILE] [--slices 16] [--rounds 3] [--compile]

The last line is the optimised (default ``mode="auto"``) path's slices per second.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np


def realistic_inputs(n: int, seed: int = 0) -> np.ndarray:
    """ImageNet-normalised 3-channel slices built like the real ones (smooth blobs, [0, 1] scaled)."""
    from scipy.ndimage import gaussian_filter

    from NACResponseLib.deep.slices import imagenet_normalise, scale_unit

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        chans = [scale_unit(gaussian_filter(rng.normal(size=(224, 224)), sigma=s)) for s in (2.0, 4.0, 3.0)]
        out.append(imagenet_normalise(np.stack(chans)))
    return np.stack(out).astype(np.float32)


def main(argv=None) -> int:
    import torch

    from NACResponseLib.deep.engine import (
        FeatureEngine,
        available_cores,
        configure_threads,
        cosine_rows,
        native_bf16,
    )
    from NACResponseLib.deep.resnet import load_resnet50

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", help="torchvision resnet50 checkpoint (default: random weights, same cost)")
    ap.add_argument("--slices", type=int, default=16, help="slices per round for the optimised paths")
    ap.add_argument("--naive-slices", type=int, default=6, help="slices per round for the naive path")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--compile", action="store_true", help="also measure torch.compile (minutes of compiling)")
    args = ap.parse_args(argv)

    threads = configure_threads()
    model, info = load_resnet50(args.weights, random_weights=args.weights is None)
    x = realistic_inputs(max(args.slices, args.naive_slices))
    print(f"torch {torch.__version__}, {available_cores()} cores available, {threads} threads, "
          f"CPU capability {torch.backends.cpu.get_cpu_capability()}, native bf16: {native_bf16()}, "
          f"load average {os.getloadavg()[0]:.1f}; weights: {'random' if info['random_weights'] else info['weights']}")

    # naive anchor: what a first attempt looks like
    naive_model = load_resnet50(args.weights, random_weights=args.weights is None)[0]
    with torch.no_grad():
        ref = np.concatenate([naive_model.features(torch.from_numpy(x[i:i + 1])).numpy() for i in range(len(x))])

    engines = {"eager (channels-last, batched)": FeatureEngine(model, mode="eager", precision="fp32",
                                                               batch_size=args.batch_size),
               "fused (BN folded, channels-last, batched)": FeatureEngine(model, mode="fused", precision="fp32",
                                                                          batch_size=args.batch_size),
               "frozen (TorchScript freeze, oneDNN fusion)": FeatureEngine(model, mode="frozen", precision="fp32",
                                                                           batch_size=args.batch_size),
               "auto (the default)": FeatureEngine(model, mode="auto", precision="auto",
                                                   batch_size=args.batch_size)}
    if native_bf16():
        engines["frozen bf16"] = FeatureEngine(model, mode="frozen", precision="bf16", batch_size=args.batch_size)
    if args.compile:
        engines["torch.compile"] = FeatureEngine(model, mode="compile", precision="fp32", batch_size=args.batch_size)
    cosines = {}
    for name, engine in engines.items():  # warm-up (tracing, compiling) and agreement
        t = time.perf_counter()
        cosines[name] = float(cosine_rows(ref, engine(x)).min())
        print(f"  set-up + first pass {name}: {time.perf_counter() - t:.1f} s", flush=True)

    naive = "naive (eager, batch 1, fp32)"
    best = {name: 0.0 for name in [naive, *engines]}
    best_cpu = dict(best)  # slices per CPU-second of this process: less sensitive to other load

    def measure(name, fn, n):
        t, c = time.perf_counter(), time.process_time()
        fn()
        best[name] = max(best[name], n / (time.perf_counter() - t))
        best_cpu[name] = max(best_cpu[name], n / max(time.process_time() - c, 1e-9))

    def run_naive():
        with torch.no_grad():
            for i in range(args.naive_slices):
                naive_model.features(torch.from_numpy(x[i:i + 1]))

    xs = x[:args.slices]
    for r in range(args.rounds):
        measure(naive, run_naive, args.naive_slices)
        for name, engine in engines.items():
            measure(name, lambda e=engine: e(xs), len(xs))
        print(f"  round {r + 1}/{args.rounds} done (load average {os.getloadavg()[0]:.1f})", flush=True)

    anchor, anchor_cpu = best[naive], best_cpu[naive]
    print(f"{'path':48s} {'slices/s':>9s} {'x naive':>8s} {'slices/CPU-s':>13s} {'x naive':>8s} {'min cosine':>11s}")
    for name in [naive, *engines]:
        print(f"{name:48s} {best[name]:9.2f} {best[name] / anchor:8.2f} {best_cpu[name]:13.2f} "
              f"{best_cpu[name] / anchor_cpu:8.2f} {cosines.get(name, 1.0):11.6f}")
    auto = engines["auto (the default)"]
    print(f"default engine settings: {auto.settings}")
    print(f"optimised slices/s: {best['auto (the default)']:.2f}")
    print(f"{best['auto (the default)']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
