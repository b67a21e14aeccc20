"""Benchmark: sliding-window segmentation inference on a 256 x 256 x 96 volume (shipped configuration).

Reports wall time and peak resident memory of ``segment_case`` (reading nothing from disk:
resampling to the network grid, z-score, sliding window, back to the original grid,
post-processing), without and with flip TTA, each in a fresh child process so the peak memory is
its own.  Anchor, measured in the same run: one forward pass of one ROI batch, so the ratio says
how many batches' worth of work the whole volume costs.  Targets: <= 60 s and <= 4 GB on
2 CPU cores.  With CUDA present the GPU time is reported too.

    python benchmarks/seg_inference.py [--size 256,256,96] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _model(tmp: Path):
    from NACResponseLib.segmentation import NetworkConfig, PreprocessConfig, build_network, save_bundle
    from NACResponseLib.segmentation.bundle import bundle_metadata
    from NACResponseLib.segmentation.training import TrainingConfig

    shipped = TrainingConfig()  # the defaults `seg train` ships with
    net = build_network(len(shipped.preprocess.channels), shipped.network)
    meta = bundle_metadata(name="bench", preprocess=PreprocessConfig(), network=NetworkConfig(),
                           roi_size=shipped.roi_size, training_data_sha256="0" * 64, metrics={}, provenance={})
    return save_bundle(tmp / "model", net.state_dict(), meta)


def _volume(size):
    import numpy as np
    import SimpleITK as sitk

    rng = np.random.default_rng(0)
    x, y, z = size
    pre = rng.normal(60, 6, (z, y, x)).astype(np.float32)
    early = pre * 1.1
    early[z // 3: z // 2, y // 3: y // 2, x // 3: x // 2] += 80
    out = []
    for a in (pre, early):
        img = sitk.GetImageFromArray(a)
        img.SetSpacing((1.0, 1.0, 2.0))
        out.append(img)
    return out


def child(args) -> None:
    import torch

    from NACResponseLib.segmentation import InferenceConfig, load_bundle, segment_case

    if args.threads:
        torch.set_num_threads(args.threads)
    size = tuple(int(v) for v in args.size.split(","))
    with tempfile.TemporaryDirectory() as tmp:
        model = load_bundle(_model(Path(tmp)), device=args.device)
        images = _volume(size)
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        if args.what == "anchor":
            x = torch.zeros((InferenceConfig().sw_batch_size, 2, *model.roi_size), device=model.device)
            with torch.no_grad():
                model.network(x)  # warm-up
                start = time.perf_counter()
                model.network(x)
                if model.device.type == "cuda":
                    torch.cuda.synchronize()
        else:
            start = time.perf_counter()
            segment_case(model, images, InferenceConfig(tta=args.what == "tta"))
            if model.device.type == "cuda":
                torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"what": args.what, "seconds": seconds, "peak_rss_mb": peak, "rss_before_mb": rss0,
                      "threads": torch.get_num_threads(), "device": str(model.device)}))


def _run(what: str, args, device: str) -> dict:
    cmd = [sys.executable, __file__, "--child", what, "--size", args.size, "--device", device]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="256,256,96", help="x,y,z voxels (1 x 1 x 2 mm)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--child", dest="what", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.what:
        child(args)
        return
    import torch

    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for device in devices:
        anchor = _run("anchor", args, device)
        print(f"[{device}] anchor: one forward pass of one ROI batch: {anchor['seconds'] * 1000:.1f} ms "
              f"({anchor['threads']} threads)")
        for what in ("plain", "tta"):
            r = _run(what, args, device)
            ok = "OK" if r["seconds"] <= 60 and r["peak_rss_mb"] <= 4096 else "OVER TARGET"
            print(f"[{device}] {what:5s} {args.size}: {r['seconds']:.1f} s "
                  f"(= {r['seconds'] / anchor['seconds']:.0f} x anchor), peak RSS {r['peak_rss_mb']:.0f} MB "
                  f"(process before inference {r['rss_before_mb']:.0f} MB)  [{ok}: <= 60 s, <= 4096 MB]")


if __name__ == "__main__":
    main()
