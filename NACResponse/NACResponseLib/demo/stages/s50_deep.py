"""Demo stage: deep features on the synthetic study.

* Bottleneck features of the segmentation network (``deep_bottleneck``, read by the models
  stage).  The trained bundle of the segmentation stage is used when one is found under the
  demo folder; otherwise an untrained SegResNet bundle is written and used, and labelled so.
* ResNet-50 descriptors with RANDOM weights (no ImageNet weights are shipped or downloaded),
  clearly labelled as a test of the pipeline, plus one Grad-CAM overlay figure.
"""

from __future__ import annotations

import html
import time
from pathlib import Path

UNTRAINED = "deep_demo_untrained_segresnet"
TITLE = "Deep features (segmentation-network bottleneck; ResNet-50 with random weights)"


def _find_bundle(*roots: Path) -> Path | None:
    for root in roots:
        if root is None or not root.is_dir():
            continue
        for meta in sorted(root.rglob("configs/metadata.json")):
            bundle = meta.parent.parent
            if bundle.name != UNTRAINED and (bundle / "models" / "model.pt").is_file():
                return bundle
    return None


def _untrained_bundle(out: Path, seed: int) -> Path:
    import torch

    from ...provenance import collect
    from ...segmentation import NetworkConfig, PreprocessConfig, build_network, save_bundle
    from ...segmentation.bundle import bundle_metadata

    if (out / "configs" / "metadata.json").is_file():
        return out
    torch.manual_seed(seed)
    net, pre = NetworkConfig(), PreprocessConfig()
    meta = bundle_metadata(name="untrained-segresnet", preprocess=pre, network=net, roi_size=(64, 64, 32),
                           training_data_sha256="none", metrics={},
                           provenance=collect(step="demo untrained network", parameters={"seed": seed}),
                           description="UNTRAINED SegResNet (random weights) for the deep-feature demo")
    return save_bundle(out, build_network(len(pre.channels), net).state_dict(), meta)


def _gradcam_figure(store, out_png: Path) -> str:
    """One ROI's DCE channel with its Grad-CAM overlay (random weights: shows the mechanics only)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ...deep.cases import cohort_cases
    from ...deep.cohort import ResNetSettings, case_input
    from ...deep.gradcam import resnet_gradcam
    from ...deep.resnet import load_resnet50
    from ...deep.slices import IMAGENET_MEAN, IMAGENET_STD

    case = cohort_cases(store.cohort, readers=["R1"], timepoints=["pre"])[0]
    item = case_input(store, case, ResNetSettings())
    model, _ = load_resnet50(None, random_weights=True)
    maps, _ = resnet_gradcam(model, item.array[None])
    dce = item.array[0] * IMAGENET_STD[0] + IMAGENET_MEAN[0]
    fig, axes = plt.subplots(1, 2, figsize=(6, 3))
    axes[0].imshow(dce, cmap="gray")
    axes[0].contour(item.mask, levels=[0.5], colors="lime", linewidths=0.8)
    axes[0].set_title(f"{case.name}: DCE early, slice {item.slice_index}", fontsize=8)
    axes[1].imshow(dce, cmap="gray")
    axes[1].imshow(maps[0], cmap="jet", alpha=0.4)
    axes[1].set_title("Grad-CAM (RANDOM weights)", fontsize=8)
    for a in axes:
        a.axis("off")
    fig.tight_layout()
    fig.savefig(out_png, dpi=100)
    plt.close(fig)
    return out_png.name


def run(ctx) -> dict:
    from ...deep import extract_bottleneck, extract_resnet50
    from ...deep.engine import available_cores

    store = ctx.study
    if store is None:
        raise RuntimeError("no study (the import stage did not run)")
    summary: dict = {}
    body = []

    bundle = _find_bundle(ctx.out_dir / "seg_model", store.root / "models", ctx.out_dir)  # s40 writes seg_model
    trained = bundle is not None
    if not trained:
        bundle = _untrained_bundle(ctx.out_dir / UNTRAINED, ctx.seed)
    t = time.perf_counter()
    bott = extract_bottleneck(store, bundle)
    summary["bottleneck"] = {"model": str(bundle), "trained": trained, "rois": bott.done + bott.reused,
                             "failed": len(bott.failed), "seconds": round(time.perf_counter() - t, 1)}
    shape = bott.outputs["table"].shape if bott.outputs["table"] is not None else (0, 0)
    body.append(
        f"<p><b>Bottleneck features</b> from <code>{html.escape(str(bundle))}</code>"
        + ("" if trained else " — <b>an UNTRAINED network</b> (no trained segmentation bundle was found), so "
           "these features only demonstrate the pipeline")
        + f": {summary['bottleneck']['rois']} ROIs, {len(bott.failed)} failed, "
        f"{summary['bottleneck']['seconds']} s. Table <code>deep_bottleneck</code> {shape[0]} x {shape[1]} "
        "(mean and max of each bottleneck channel inside the tumour, per timepoint, plus deltas).</p>")

    readers = ["R1"]
    timepoints = ["pre", "post"]
    t = time.perf_counter()
    # every core: an earlier stage's serial runner may have left OMP_NUM_THREADS=1 in this process
    res = extract_resnet50(store, random_weights=True, readers=readers, timepoints=timepoints,
                           threads=available_cores())
    seconds = time.perf_counter() - t
    n = res.done + res.reused
    summary["resnet50"] = {"random_weights": True, "rois": n, "computed": res.done, "failed": len(res.failed),
                           "seconds": round(seconds, 1), "engine": res.outputs["provenance"].get("engine")}
    shape = res.outputs["table"].shape if res.outputs["table"] is not None else (0, 0)
    rate = f", {res.done / seconds:.1f} ROIs/s including reading and resampling" if res.done else ""
    body.append(
        "<p><b>ResNet-50 descriptors with RANDOM weights</b> (testing only: no ImageNet weights are shipped; "
        "give the torchvision checkpoint with <code>nacresponse features deep STUDY --weights FILE</code>): "
        f"reader {', '.join(readers)}, timepoints {', '.join(timepoints)}, {n} ROIs, {len(res.failed)} failed"
        f"{rate}. Table <code>deep_resnet50</code> {shape[0]} x {shape[1]}; the provenance marks the weights "
        "as random.</p>")
    try:
        png = _gradcam_figure(store, ctx.out_dir / "deep_gradcam.png")
        body.append(f"<p><img src='{html.escape(png)}' alt='Grad-CAM'></p>")
    except Exception as exc:  # a figure must not fail the stage
        body.append(f"<p>Grad-CAM figure not drawn: {html.escape(str(exc))}</p>")
    failures = (bott.outputs["failures"] + res.outputs["failures"])[:10]
    if failures:
        body.append("<p>Failed ROIs (first 10):</p><ul>"
                    + "".join(f"<li>{html.escape(f['error'])}</li>" for f in failures) + "</ul>")
    ctx.add_section(TITLE, "\n".join(body))
    return summary
