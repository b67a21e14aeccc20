"""Accuracy of MC detection on phantoms (no timing): MC-level FROC, cluster-level sensitivity and
false clusters per normal image, at several clustering rules.

Sets (every image seeded, so the numbers are reproducible):

- ``classic``: the test suite's phantoms (0.3 mm MCs at CNR 6 and 4, 0.1 mm pixels, CC + MLO,
  vessels and coarse calcifications, breast against the image edge);
- ``realistic``: padded left and right CC/MLO breasts that touch no image edge, a faint periphery,
  density 0-1, two broken scanner lines, a film-edge block, vessels and coarse calcifications;
  one MC cluster (n 5-12, 0.2-0.5 mm, CNR 4-7, extent 5-15 mm) on half the images, none on the
  other half (the normal images), at 0.1 mm and at 0.2 mm pixels.

    PYTHONPATH=NACResponse .venv/bin/python benchmarks/mc_accuracy.py [--images 8] [--classifier DIR]
"""

from __future__ import annotations

import argparse

import numpy as np

from NACResponseLib.mc.clusters import BIRADS_GROUPED, DENSE_CORE, ClusterParams, cluster_detections
from NACResponseLib.mc.detect import DetectorParams, detect_microcalcifications
from NACResponseLib.mc.evaluation import cluster_hits, froc, sensitivity_at
from NACResponseLib.mc.phantom import synthesize_mammogram

RULES = {
    "default: 3 within 10 mm, 10 mm link": ClusterParams(),
    "3 within 10 mm, 5 mm link only": ClusterParams(link_distance_mm=5.0),
    "DENSE_CORE: 3 in a 5 mm core, 10 mm link": DENSE_CORE,
    "BIRADS_GROUPED: 5 in a 5 mm core, 10 mm link": BIRADS_GROUPED,
}


def classic_images(n: int):
    for cnr in (6, 4):
        for seed in range(n // 2):
            view = "MLO" if seed % 2 else "CC"
            cl = [{"center_mm": (20, 38), "n": 10, "extent_mm": 10.0, "diameter_mm": (0.3, 0.3), "cnr": cnr},
                  {"center_mm": (32, 58), "n": 10, "extent_mm": 10.0, "diameter_mm": (0.3, 0.3), "cnr": cnr}]
            im, truth = synthesize_mammogram(np.random.default_rng(100 + seed), spacing_mm=0.1, view=view,
                                             clusters=cl, n_vessels=2, n_benign=2)
            yield f"CNR {cnr}", im, 0.1, view, truth


def realistic_images(n: int, spacing: float):
    for seed in range(n):
        rng = np.random.default_rng(500 + seed)
        view, lat = ("CC", "MLO")[seed % 2], ("L", "R")[(seed // 2) % 2]
        cl = []
        if seed % 4 < 2:  # half the images have a cluster
            cl = [{"center_mm": (float(rng.uniform(18, 35)), float(rng.uniform(35, 60))),
                   "n": int(rng.integers(5, 13)), "extent_mm": float(rng.uniform(5, 15)),
                   "diameter_mm": (0.2, 0.5), "cnr": (4.0, 7.0)}]
            if lat == "R":
                cl[0]["center_mm"] = (70.0 - cl[0]["center_mm"][0], cl[0]["center_mm"][1])
        im, truth = synthesize_mammogram(rng, spacing_mm=spacing, view=view, laterality=lat, clusters=cl,
                                         n_vessels=2, n_benign=2, pad_mm=8.0, skin_level=0.2,
                                         density=float(rng.uniform(0, 1)), scanner_lines=2, film_edge=True)
        yield f"realistic {spacing} mm", im, spacing, view, truth


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=8, help="images per set (default 8)")
    ap.add_argument("--classifier", help="saved candidate classifier folder (mc train-classifier)")
    args = ap.parse_args()
    classifier = None
    if args.classifier:
        from NACResponseLib.mc.classifier import load_classifier
        classifier = load_classifier(args.classifier)
    base = DetectorParams()
    sweep = DetectorParams(threshold=3.0)  # lower threshold: the FROC curve is swept over the score
    sets: dict[str, list] = {}
    for gen in (classic_images(args.images), realistic_images(args.images, 0.1), realistic_images(args.images, 0.2)):
        for name, im, s, view, truth in gen:
            res = detect_microcalcifications(im, s, view=view, params=sweep)
            det = res.detections
            if classifier is not None:
                det = classifier.apply(det)
            sets.setdefault(name, []).append((det, truth, res.breast))
    # With a classifier the FROC curve is swept over its probability, the clusters use its decision.
    score = "probability" if classifier is not None else "score"
    print("| set | images | sens. @1 FP/img | sens. @2 FP/img | chest wall right | rule | cluster sens. | "
          "false clusters / image | false clusters / normal image |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, items in sets.items():
        curve = froc([(d.assign(score=d[score]), t) for d, t, _ in items])
        walls = sum(b.chest_wall == "right" for _, _, b in items)
        for rule, cp in RULES.items():
            n_true = found = false = false_normal = n_normal = 0
            for det, truth, breast in items:
                kept = det[det["kept"] & (det["score"] >= base.threshold)]
                mcs, _ = cluster_detections(kept, cp, breast.area_mm2)
                h = cluster_hits(mcs, truth)
                n_true, found, false = n_true + h["n_true"], found + h["found"], false + h["false"]
                if not truth:
                    n_normal += 1
                    false_normal += h["false"]
            normal = f"{false_normal / n_normal:.2f}" if n_normal else "-"
            print(f"| {name} | {len(items)} | {sensitivity_at(curve, 1.0):.2f} | {sensitivity_at(curve, 2.0):.2f} | "
                  f"{walls} | {rule} | {found}/{n_true} | {false / len(items):.2f} | {normal} |")


if __name__ == "__main__":
    main()
