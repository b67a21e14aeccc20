"""DLR dual-input network on the CPU: training time per epoch and inference time per case.

Anchor (measured in the same run): one plain forward pass of the shared encoder on one crop
(batch 1, ``torch.no_grad``), the least work any prediction needs.  Against it: one training
epoch (augmentation, forward, backward, AdamW step on every case) and inference per case (both
timepoints through the encoder, fused head), both as ratios to the anchor so the numbers carry
over between machines.

    python benchmarks/dlr.py [--cases 32] [--size 64] [--width 64] [--rounds 3]
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main(argv=None) -> int:
    import torch

    from NACResponseLib.deep.dlr import (
        DLRNetConfig,
        TrainConfig,
        build_network,
        predict_logits,
        train_network,
    )
    from NACResponseLib.deep.engine import available_cores, configure_threads

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=32)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--width", type=int, default=64, help="first-stage channels (64 = ResNet-18)")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args(argv)
    threads = configure_threads(available_cores())
    rng = np.random.default_rng(0)
    shape = (args.cases, 3, args.size, args.size)
    base, treat = rng.normal(size=shape).astype(np.float32), rng.normal(size=shape).astype(np.float32)
    y = np.arange(args.cases) % 2
    config = DLRNetConfig(widths=tuple(args.width * k for k in (1, 2, 4, 8)))
    net = build_network(config).eval()
    x = torch.as_tensor(base[:1])

    def anchor():  # the fastest of five passes: one call is too short to time on a shared machine
        times = []
        with torch.no_grad():
            for _ in range(5):
                start = time.perf_counter()
                net.activation(x)
                times.append(time.perf_counter() - start)
        return min(times)

    def epoch():
        train_network(base, treat, y, net_config=config, train_config=TrainConfig(epochs=1, validation_fraction=0.0))

    def infer():
        predict_logits(net, base, treat)

    best = {"anchor": np.inf, "epoch": np.inf, "infer": np.inf}
    anchor()  # warm-up
    for _ in range(args.rounds):
        for name, fn in (("anchor", anchor), ("epoch", epoch), ("infer", infer)):
            start = time.perf_counter()
            inner = fn()
            best[name] = min(best[name], inner if inner is not None else time.perf_counter() - start)
    per_case = best["infer"] / args.cases
    print(f"DLR {config.architecture} widths {config.widths}, {args.size}px crops, {args.cases} cases, "
          f"{threads} threads (best of {args.rounds})")
    print(f"anchor: encoder forward, 1 crop: {best['anchor'] * 1000:.1f} ms")
    print(f"training: {best['epoch']:.2f} s per epoch ({best['epoch'] / best['anchor']:.0f} x anchor; "
          f"{best['epoch'] / args.cases * 1000:.0f} ms per case)")
    print(f"inference: {per_case * 1000:.1f} ms per case, two timepoints ({per_case / best['anchor']:.1f} x anchor)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
