"""``nacresponse features deep``: ResNet-50 descriptors and/or segmentation-bottleneck features.

Registered into the ``features`` command group by ``commands/features.py`` via
``register(features_subparsers)``.
"""

from __future__ import annotations

import argparse
import sys


def register(features_subparsers) -> argparse.ArgumentParser:
    p = features_subparsers.add_parser(
        "deep", help="deep features: ResNet-50 2.5D descriptors and segmentation-network bottleneck features",
        description="ResNet-50 descriptors of the largest tumour cross-section per timepoint (tables "
        "deep_resnet50, deep_resnet50_slices) and, with --seg-model, the segmentation network's bottleneck "
        "pooled in the tumour (table deep_bottleneck). ImageNet weights are never downloaded: give the "
        "torchvision resnet50 checkpoint file with --weights.")
    p.add_argument("study", help="study folder")
    p.add_argument("--weights", metavar="FILE",
                   help="torchvision ImageNet resnet50 state dict (.pth); default: $NACRESPONSE_RESNET50_WEIGHTS")
    p.add_argument("--sha256", metavar="HEX", help="expected SHA-256 of the weights file (else a FILE.sha256 "
                   "sidecar or the hash prefix in torchvision's file name is checked)")
    p.add_argument("--random-weights", action="store_true",
                   help="TESTING ONLY: random ResNet-50 weights (meaningless features, marked in provenance)")
    p.add_argument("--skip-resnet", action="store_true", help="compute only the bottleneck features")
    p.add_argument("--seg-model", metavar="DIR", help="segmentation model bundle: also compute bottleneck features")
    p.add_argument("--channels", default="dce_early,adc|dwi,t2w",
                   help="three image keys for the RGB channels, comma-separated; 'a|b' = a, else b "
                   "(default: %(default)s); one key (e.g. us_bmode, mg_cc_L) is repeated on all three")
    p.add_argument("--average-neighbours", action="store_true",
                   help="average the largest-section slice with the slices at index +-1")
    p.add_argument("--margin-mm", type=float, default=10.0, help="margin around the tumour box (default 10)")
    p.add_argument("--readers", help="comma-separated readers (default: all)")
    p.add_argument("--timepoints", help="comma-separated timepoints (default: all)")
    p.add_argument("--batch-size", type=int, default=8, help="slices per inference batch (default 8)")
    p.add_argument("--threads", type=int, help="CPU threads (default: the cores available)")
    p.add_argument("--mode", choices=("auto", "eager", "fused", "frozen", "compile"), default="auto",
                   help="inference engine (default auto: frozen TorchScript on CPU, eager on GPU; fused: batch norm folded by hand)")
    p.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                   help="auto: bf16 only on CPUs with native bf16 and cosine >= 0.999 to fp32")
    p.add_argument("--gradcam", action="store_true", help="also write Grad-CAM maps aligned with the DCE volume")
    p.add_argument("--overwrite", action="store_true", help="replace tables made with other parameters")
    p.set_defaults(func=run)
    return p


def _split(text: str | None) -> list[str] | None:
    return [t.strip() for t in text.split(",") if t.strip()] if text else None


def run(args) -> int:
    from ..cli import CANCEL
    from ..errors import InputError
    from ..store import StudyStore
    from .bottleneck import extract_bottleneck
    from .extract import ResNetSettings, extract_resnet50

    if args.skip_resnet and not args.seg_model:
        raise InputError("--skip-resnet needs --seg-model (otherwise there is nothing to compute)")
    channels = tuple(_split(args.channels) or [])
    if not 1 <= len(channels) <= 3:
        raise InputError(f"--channels needs 1 to 3 image keys, got {args.channels!r}")
    store = StudyStore(args.study)
    readers, timepoints = _split(args.readers), _split(args.timepoints)
    results = []
    if not args.skip_resnet:
        settings = ResNetSettings(channels=channels, average_neighbours=args.average_neighbours,
                                  margin_mm=args.margin_mm)
        res = extract_resnet50(store, weights=args.weights, expected_sha256=args.sha256,
                               random_weights=args.random_weights, settings=settings, readers=readers,
                               timepoints=timepoints, batch_size=args.batch_size, mode=args.mode,
                               precision=args.precision, threads=args.threads, gradcam=args.gradcam,
                               overwrite=args.overwrite, cancel=CANCEL)
        results.append(("deep_resnet50", res))
        if args.random_weights:
            print("WARNING: random ResNet-50 weights (--random-weights): features are for testing only",
                  file=sys.stderr)
    if args.seg_model:
        res = extract_bottleneck(store, args.seg_model, readers=readers, timepoints=timepoints,
                                 overwrite=args.overwrite, cancel=CANCEL)
        results.append(("deep_bottleneck", res))
    status = 0
    for name, res in results:
        where = res.path if res.path else "not written (no ROI succeeded)"
        print(f"{name}: {res.computed} computed, {res.cached} from cache, {len(res.failures)} failed -> {where}")
        for f in res.failures:
            print(f"  failed: {f['error']}")
        if res.failures or res.path is None:
            status = 1
    return status
