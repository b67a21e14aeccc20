"""MC detection on the realism cases seen on real mammograms: padded and mirrored breasts (chest-wall
side, pectoral), a faint periphery, broken scanner lines, one coarse blob at coarse pixels, and the
optional learned candidate classifier (training labels from phantoms and from user edits, no pickle)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from NACResponseLib.errors import InputError
from NACResponseLib.mc.breast import segment_breast
from NACResponseLib.mc.detect import DetectorParams, detect_microcalcifications
from NACResponseLib.mc.evaluation import match_image
from NACResponseLib.mc.phantom import (
    _add_scanner_line,
    _add_sphere,
    edge_thickness,
    noise_sigma,
    synthesize_mammogram,
)


@pytest.mark.parametrize("laterality", ["L", "R"])
@pytest.mark.parametrize("view", ["CC", "MLO"])
@pytest.mark.parametrize("mirror", [False, True])
def test_chest_wall_side_on_padded_and_mirrored_breasts(laterality, view, mirror):
    im, _ = synthesize_mammogram(np.random.default_rng(3), view=view, laterality=laterality, clusters=[], pad_mm=8.0,
                                 skin_level=0.2, film_edge=True, scanner_lines=1, density=0.8)
    if mirror:
        im = im[:, ::-1]
    expected = "left" if (laterality == "L") != mirror else "right"
    br = segment_breast(im, 0.1, view=view)
    assert not br.mask[:, [0, -1]].any() and not br.mask[[0, -1]].any()  # the breast touches no image edge
    assert br.chest_wall == expected
    assert not (br.labels & br.mask).any() and br.labels.any()  # film edge and label are not breast
    if view == "MLO":  # the pectoral triangle is found in the top chest-wall corner
        assert br.pectoral.sum() * 0.01 > 200
        corner = br.pectoral[80:200, 80:200] if expected == "left" else br.pectoral[80:200, -200:-80]
        assert corner.mean() > 0.5


def test_faint_periphery_stays_in_the_breast():
    """The same breast with a bright and with a faint skin fall-off: the masks have the same area."""
    areas = {}
    for level in (0.55, 0.2, 0.1):
        im, _ = synthesize_mammogram(np.random.default_rng(3), clusters=[], pad_mm=8.0, skin_level=level)
        areas[level] = segment_breast(im, 0.1, view="CC").area_mm2
    assert areas[0.2] == pytest.approx(areas[0.55], rel=0.03)
    assert areas[0.1] == pytest.approx(areas[0.55], rel=0.03)


@pytest.mark.parametrize("spacing", [0.1, 0.2])
@pytest.mark.parametrize("skin_level", [0.55, 0.2])
def test_breast_mask_ends_at_the_skin_line(spacing, skin_level):
    """A half-disc breast of radius R against the left edge, with the semicircular fall-off and a
    step to the background at R: the mask's edge lies on the skin line.  Its mean outward offset
    (area excess over the half-circumference) is within 0.2 mm, and at three rows its end is within
    0.35 mm of the circle (measured: 0.07-0.18 mm and at most 0.32 mm; the working-resolution mask,
    blurred by 0.5 mm and blocky at 0.4 mm, was 0.58-0.76 mm out, and its ends up to 1.6 mm)."""
    R, s = 30.0, spacing
    n = int(round(2.4 * R / s))
    rng = np.random.default_rng(7)
    y = (np.arange(n) + 0.5) * s - n * s / 2
    x = (np.arange(int(round(1.3 * R / s))) + 0.5) * s
    depth = R - np.hypot(y[:, None], x[None, :])
    tissue = 1700.0 * (skin_level + (1 - skin_level) * edge_thickness(depth))
    im = np.where(depth > 0, tissue, 0.0) + rng.normal(0, 5, depth.shape)
    im = np.where(depth > 0, im + rng.normal(0, 25 * 0.1 / s, depth.shape), im).astype(np.float32)
    br = segment_breast(im, s, view="CC")
    assert br.chest_wall == "left"
    assert abs((br.area_mm2 - np.pi * R**2 / 2) / (np.pi * R)) <= 0.2
    for r in (n // 2, n // 4, n // 8):
        end = (np.flatnonzero(br.mask[r])[-1] + 1) * s
        assert abs(end - np.sqrt(R**2 - y[r] ** 2)) <= 0.35


def test_noise_tiles_do_not_move_with_the_breast_mask():
    """The noise tiles sit on a grid fixed to the image: shrinking the breast mask by 3 pixels at the
    skin changes no score more than 20 mm inside (tiles anchored at the mask's bounding box moved
    with it, and every score changed)."""
    from dataclasses import replace

    from scipy import ndimage as ndi

    cl = [{"center_mm": (25, 38), "n": 10, "extent_mm": 10.0, "diameter_mm": (0.3, 0.4), "cnr": 6}]
    im, _ = synthesize_mammogram(np.random.default_rng(11), spacing_mm=0.1, view="CC", clusters=cl)
    br = segment_breast(im, 0.1, view="CC")
    shrunk = replace(br, mask=ndi.binary_erosion(br.mask, iterations=3, border_value=1))
    params = DetectorParams(threshold=3.0)
    a = detect_microcalcifications(im, 0.1, view="CC", breast=br, params=params).detections
    b = detect_microcalcifications(im, 0.1, view="CC", breast=shrunk, params=params).detections
    depth = ndi.distance_transform_edt(br.mask) * 0.1
    deep_a = a[depth[a["row"], a["col"]] > 20].set_index(["row", "col"])["score"]
    deep_b = b.set_index(["row", "col"])["score"].reindex(deep_a.index)
    assert len(deep_a) >= 5
    np.testing.assert_allclose(deep_b.to_numpy(), deep_a.to_numpy(), rtol=1e-5)


def test_skin_edge_is_no_object_on_a_breast_that_touches_no_edge():
    """A padded breast (no image edge) with a bright periphery: the skin line's band-pass response
    runs all around it.  Taken into the object mask it closed a ring, which the ``coarse_or_rim``
    rule filled into one large object, rejecting nearly every candidate; ``object_skin_mm`` keeps it
    out, and the cluster's MCs are kept."""
    cl = [{"center_mm": (25, 45), "n": 10, "extent_mm": 8.0, "diameter_mm": (0.3, 0.45), "cnr": 8}]
    im, truth = synthesize_mammogram(np.random.default_rng(21), spacing_mm=0.1, view="CC", clusters=cl,
                                     pad_mm=8.0, skin_level=0.55)
    det = detect_microcalcifications(im, 0.1, view="CC").detections
    assert (det["reason"] == "coarse_or_rim").mean() < 0.2
    kept = det[det["kept"]]
    labels = match_image(kept[["x_mm", "y_mm"]].to_numpy(), kept["score"].to_numpy(),
                         np.array([[m["x_mm"], m["y_mm"]] for m in truth]))
    assert (labels == 1).sum() >= 8


def test_skin_falloff_is_the_semicircular_edge_and_smooth():
    """The edge model: a half-cylinder rim of radius R, so the path at depth d is sqrt(d (2R - d)) / R
    of the full thickness (0 at the skin, 1 from R on), and its slope is continuous at R (no kink
    for the band-pass to turn into a line of candidates R inside the skin)."""
    R = 6.0
    d = np.array([0.0, 0.5, 1.5, 3.0, 4.5, 6.0, 9.0])
    np.testing.assert_allclose(edge_thickness(d, R), np.sqrt(np.minimum(d, R) * (2 * R - np.minimum(d, R))) / R,
                               atol=1e-6)
    h = 1e-2
    slope_in = (edge_thickness(R, R) - edge_thickness(R - h, R)) / h
    slope_out = (edge_thickness(R + h, R) - edge_thickness(R, R)) / h
    assert abs(slope_in - slope_out) < 0.03  # a linear ramp clipped at R would step by 1/R = 0.17


def test_broken_scanner_line_is_rejected_and_mcs_kept():
    cl = [{"center_mm": (25, 45), "n": 8, "extent_mm": 8.0, "diameter_mm": (0.3, 0.4), "cnr": 8}]
    im, truth = synthesize_mammogram(np.random.default_rng(7), clusters=cl, label=False)
    row_mm = 0.3 * im.shape[0] * 0.1
    _add_scanner_line(im, 0.1, 0.3, 9.0, np.random.default_rng(1))
    det = detect_microcalcifications(im, 0.1, view="CC").detections
    on_line = det[np.abs(det["y_mm"] - row_mm) < 0.3]
    assert len(on_line) >= 5  # the fragments are strong enough to be candidates ...
    # ... and rejected (measured: all but the last one before the skin line, whose outer arm is outside)
    assert on_line["kept"].sum() <= 1 and (on_line["reason"] == "linear").mean() > 0.8
    kept = det[det["kept"]]
    xy = kept[["x_mm", "y_mm"]].to_numpy()
    found = [np.min(np.hypot(*(xy - [t["x_mm"], t["y_mm"]]).T)) < 0.5 for t in truth]
    assert np.mean(found) >= 0.85


def test_one_coarse_blob_at_coarse_pixels_is_one_rejected_candidate():
    """1.6 mm calcifications at 0.2 mm pixels: one candidate each, rejected (noise used to split each
    blob among several seeds, each measured with a share of its area and so passing the size rule)."""
    im, _ = synthesize_mammogram(np.random.default_rng(2), spacing_mm=0.2, clusters=[], label=False)
    blobs = [(15.0, 35.0), (20.0, 45.0), (25.0, 55.0), (30.0, 40.0)]
    for x, y in blobs:
        _add_sphere(im, x, y, 1.6, 25 * float(noise_sigma(2000.0)), 0.2)
    det = detect_microcalcifications(im, 0.2, view="CC").detections
    for x, y in blobs:
        near = det[np.hypot(det["x_mm"] - x, det["y_mm"] - y) < 1.4]
        assert len(near) == 1 and not near["kept"].any()


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    from NACResponseLib.mc.classifier_training import train_classifier

    out = tmp_path_factory.mktemp("clf")
    summary = train_classifier(out, phantom_images=6, seed=77)
    return out, summary


@pytest.mark.slow
def test_classifier_saved_without_pickle_verified_and_applied(classifier, tmp_path):
    from NACResponseLib.mc.classifier import FEATURES, load_classifier

    path, summary = classifier
    assert summary["mcs"] > 10 and summary["false"] > 10 and 0 < summary["threshold"] < 1
    meta = json.loads((path / "model.json").read_text())
    assert meta["target"] == "mc_candidate" and meta["feature_columns"] == FEATURES
    with np.load(path / "arrays.npz", allow_pickle=False) as z:  # no object arrays anywhere
        assert all(z[k].dtype != object for k in z.files)
    clf = load_classifier(path, summary["sha256"])
    cl = [{"center_mm": (25, 45), "n": 8, "extent_mm": 8.0, "diameter_mm": (0.3, 0.4), "cnr": 7}]
    im, truth = synthesize_mammogram(np.random.default_rng(9), clusters=cl, n_vessels=2, scanner_lines=1)
    p = DetectorParams(classifier=str(path), classifier_sha256=summary["sha256"])
    det = detect_microcalcifications(im, 0.1, view="CC", params=p).detections
    assert det["probability"].between(0, 1).all()
    assert (det.loc[det["kept"], "probability"] >= clf.threshold).all()
    assert set(det.loc[~det["kept"] & (det["probability"] < clf.threshold), "reason"]) <= {
        "classifier", "linear", "large", "coarse_or_rim", "small"}
    # On an unseen phantom, candidates at true MCs score higher than the others (truth: the generator).
    txy = np.array([[t["x_mm"], t["y_mm"]] for t in truth])
    lab = match_image(det[["x_mm", "y_mm"]].to_numpy(), det["score"].to_numpy(), txy)
    ruled = det["reason"].isin(["", "classifier"]).to_numpy()
    pos, neg = det["probability"][ruled & (lab == 1)], det["probability"][ruled & (lab == 0)]
    assert len(pos) >= 6 and len(neg) >= 1
    assert (pos.to_numpy()[:, None] > neg.to_numpy()[None, :]).mean() > 0.8  # AUC
    # A model changed after its hash was recorded is refused.
    tampered = tmp_path / "m"
    tampered.mkdir()
    for name in ("model.json", "arrays.npz"):
        (tampered / name).write_bytes((path / name).read_bytes())
    meta["operating_points"]["default"]["threshold"] = 0.0
    (tampered / "model.json").write_text(json.dumps(meta))
    with pytest.raises(InputError, match="SHA-256"):
        load_classifier(tampered, summary["sha256"])


class _Store:
    """The two things the edit-based training reads from a study store."""

    def __init__(self, root, det):
        self.root, self.det = root, det

    def has_table(self, name):
        return name == "mc_detections"

    def read_table(self, name):
        return self.det

    def path(self, rel):
        return self.root / rel


def test_training_labels_from_user_edits(tmp_path):
    from NACResponseLib.mc.classifier import FEATURES
    from NACResponseLib.mc.classifier_training import study_training_table

    im, _ = synthesize_mammogram(np.random.default_rng(5), clusters=[
        {"center_mm": (25, 45), "n": 6, "extent_mm": 6.0, "diameter_mm": (0.3, 0.4), "cnr": 8}], n_benign=2)
    det = detect_microcalcifications(im, 0.1, view="CC").detections
    det.insert(0, "image", "mg_cc_L")
    det.insert(0, "timepoint", "pre")
    det.insert(0, "patient_id", "P1")
    kept = det[det["kept"]]
    rejected = det[~det["kept"]]
    edits = {"remove": [kept[["x_mm", "y_mm"]].iloc[0].tolist()],
             "add": [rejected[["x_mm", "y_mm"]].iloc[0].tolist(), [1.0, 1.0]]}
    f = tmp_path / "mc_edits" / "P1" / "pre" / "mg_cc_L.json"
    f.parent.mkdir(parents=True)
    f.write_text(json.dumps(edits))
    # A second image without edits contributes nothing (nobody reviewed it).
    other = det.assign(image="mg_mlo_L")
    table, counts = study_training_table(_Store(tmp_path, pd.concat([det, other], ignore_index=True)))
    assert counts == {"images": 1, "positives": len(kept) - 1 + 1, "negatives": 1, "added_without_candidate": 1}
    assert list(table.columns[:len(FEATURES)]) == FEATURES and len(table) == len(kept) + 1
    assert table["label"].sum() == len(kept)


@pytest.mark.slow
def test_cli_train_classifier_and_bad_classifier_folder(tmp_path, capsys):
    from NACResponseLib.cli import main

    out = tmp_path / "clf"
    assert main(["mc", "train-classifier", "--out", str(out), "--phantom-images", "4", "--seed", "5"]) == 0
    printed = capsys.readouterr().out
    assert "SHA-256" in printed and (out / "model.json").is_file() and (out / "arrays.npz").is_file()
    assert main(["mc", "train-classifier", "--out", str(out), "--phantom-images", "4"]) == 2  # no silent overwrite
    assert main(["mc", "detect", str(tmp_path / "study"), "--classifier", str(tmp_path / "missing")]) == 2
    assert "missing (not a saved MC classifier folder)" in capsys.readouterr().err


@pytest.mark.slow
def test_study_detect_with_classifier_records_its_hash(copy_study, classifier, capsys):
    """``mc detect --classifier``: every candidate gets a probability, the model's SHA-256 is a
    detection parameter, and dropping the classifier recomputes instead of reusing."""
    from NACResponseLib.cli import main

    store = copy_study
    if not any(i.role.startswith("mg_") for p in store.cohort for t in p.timepoints.values() for i in t.images):
        pytest.skip("the small synthetic study has no mammograms")
    path, summary = classifier
    assert main(["mc", "detect", str(store.root), "--classifier", str(path)]) == 0
    det = store.read_table("mc_detections")
    assert det["probability"].between(0, 1).all()
    params = store.table_provenance("mc_detections")["parameters"]
    assert params["classifier_sha256"] == summary["sha256"]
    n_images = len(store.read_table("mc_images"))
    capsys.readouterr()
    assert main(["mc", "detect", str(store.root)]) == 0
    assert "probability" not in store.read_table("mc_detections") or \
        store.read_table("mc_detections")["probability"].isna().all()
    assert store.table_provenance("mc_detections")["parameters"]["classifier_sha256"] == ""
    assert len(store.read_table("mc_images")) == n_images


@pytest.mark.parametrize("spacing", [0.1, 0.2])
def test_single_pixel_spikes_rejected_and_small_mcs_kept(spacing):
    """Single-pixel spikes of 10 pixel-noise SDs (white noise, hot pixels) beside 0.3 mm MCs of CNR 8.
    At 0.1 mm pixels every MC is kept and a spike is rejected as ``small`` unless noise lifts its
    neighbours' mean over one SD (expected 16 %).  At 0.2 mm a 0.2-0.3 mm
    MC often lies within one pixel and then looks like a spike, so the rule is off there
    (``coarse_pixel_mm``; on the realistic 0.2 mm phantoms it cost 0.05 sensitivity) and the MCs
    are still kept."""
    im, _ = synthesize_mammogram(np.random.default_rng(11), spacing_mm=spacing, clusters=[], label=False)
    mcs = [(12.0 + 6 * k, 30.0 + 3.1 * k) for k in range(6)]
    spikes = [(12.0 + 2.5 * k, 50.0 + 6.0 * (k % 3)) for k in range(12)]
    for x, y in mcs:
        _add_sphere(im, x, y, 0.3, 8 * float(noise_sigma(2000.0)), spacing)
    for x, y in spikes:
        im[int(y / spacing), int(x / spacing)] += 10 * float(noise_sigma(2000.0, spacing))
    det = detect_microcalcifications(im, spacing, view="CC").detections

    def reasons(points):
        out = []
        for x, y in points:
            near = det[np.hypot(det["x_mm"] - x, det["y_mm"] - y) < 0.5]
            out.append(near["reason"].iloc[0] if len(near) else "missed")
        return out

    assert reasons(mcs) == [""] * len(mcs)  # kept
    spike_reasons = reasons(spikes)
    assert "missed" not in spike_reasons  # every spike is a candidate
    if spacing < DetectorParams().coarse_pixel_mm:
        assert spike_reasons.count("small") >= 0.75 * len(spikes), spike_reasons


@pytest.mark.parametrize("cnr", [4.0, 6.0, 8.0, 12.0])
def test_one_faint_coarse_blob_is_at_most_one_candidate(cnr):
    """1.6 mm calcifications at 0.2 mm pixels at low contrast: at most one candidate each, one when
    it is a candidate at all (before the coarse-blob merge: 2-3 seeds on the blob's ring at CNR 6-12).
    At CNR 4 (the phantom's CNR: per 0.1 mm pixel) most are below the threshold."""
    im, _ = synthesize_mammogram(np.random.default_rng(3), spacing_mm=0.2, clusters=[], label=False)
    blobs = [(15.0, 35.0), (20.0, 45.0), (25.0, 55.0), (30.0, 40.0), (35.0, 50.0), (18.0, 60.0)]
    for x, y in blobs:
        _add_sphere(im, x, y, 1.6, cnr * float(noise_sigma(2000.0)), 0.2)
    det = detect_microcalcifications(im, 0.2, view="CC").detections
    counts = [int((np.hypot(det["x_mm"] - x, det["y_mm"] - y) < 1.4).sum()) for x, y in blobs]
    assert max(counts) <= 1 and (cnr < 6 or min(counts) == 1), counts
