"""The dual-input DLR network: it learns a size-change signal (and not permuted labels), its
Grad-CAM falls on the tumour, its bundle reproduces scores and refuses tampered weights, and the
study-level train / evaluate / predict run on the synthetic ultrasound."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("monai")

from NACResponseLib.deep.dlr import (  # noqa: E402
    DLRNetConfig,
    TrainConfig,
    load_dlr_bundle,
    predict_logits,
    response_gradcam,
    save_dlr_bundle,
    train_network,
)
from NACResponseLib.errors import InputError  # noqa: E402
from NACResponseLib.modelling.evaluation import roc_auc  # noqa: E402

TINY = DLRNetConfig(widths=(8, 16, 32, 64), hidden=16, dropout=0.1, max_pool=False)  # layer2: 16x16 at 64 px
SIZE = 64
SPACING_MM = 0.3  # a 64-pixel crop of 19 mm, as the ultrasound crops of 4-8 mm tumours with a 4 mm margin
BORDER_PX = 6  # 1.8 mm of border tissue
TRAIN = TrainConfig(epochs=12, patience=12, batch_size=4, seed=0)


def _disc(centre, radius):
    yy, xx = np.mgrid[:SIZE, :SIZE]
    return ((yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius ** 2).astype(np.float32)


def _pairs(n, seed):
    """Dark lesion on bright speckle; responders' lesions shrink by half at the second timepoint.
    The lesion sits in a random quadrant (the same at both timepoints), so a map that favours the
    crop's centre gains nothing; ``masks`` is the baseline tumour with its ``BORDER_PX`` border."""
    rng = np.random.default_rng(seed)
    y = (np.arange(n) % 2).astype(int)
    base, treat, masks = [], [], []
    for yi in y:
        centre = (rng.choice([16, 48]) + rng.integers(-3, 4), rng.choice([16, 48]) + rng.integers(-3, 4))
        r0 = rng.uniform(9, 12)
        r1 = r0 * (0.5 if yi else rng.uniform(0.95, 1.1))
        images = []
        for r in (r0, r1):
            speckle = rng.rayleigh(1.0, (SIZE, SIZE)).astype(np.float32)
            images.append(np.repeat((speckle * (1 - 0.7 * _disc(centre, r)))[None], 3, axis=0))
        base.append(images[0])
        treat.append(images[1])
        masks.append(_disc(centre, r0 + BORDER_PX) > 0)
    return np.stack(base), np.stack(treat), y, np.stack(masks)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny networks gain nothing from threads, and spin-waiting threads are slow on a busy CI machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def trained():
    base, treat, y, _ = _pairs(48, 0)
    return train_network(base, treat, y, net_config=TINY, train_config=TRAIN)


def test_learns_size_change_on_held_out_patients(trained):
    net, summary = trained
    base, treat, y, _ = _pairs(40, 1)
    auc = roc_auc(y, predict_logits(net, base, treat))
    assert auc > 0.85, auc
    assert summary["init"]["init"] == "random" and summary["n_validation"] > 0


@pytest.mark.slow
def test_does_not_learn_permuted_labels():
    base, treat, y, _ = _pairs(48, 0)
    y_perm = np.random.default_rng(5).permutation(y)
    net, _ = train_network(base, treat, y_perm, net_config=TINY, train_config=TRAIN)
    b2, t2, y2, _ = _pairs(40, 1)
    y2_perm = np.random.default_rng(6).permutation(y2)  # labels unrelated to the images
    assert abs(roc_auc(y2_perm, predict_logits(net, b2, t2)) - 0.5) < 0.25


def test_gradcam_mass_lies_on_the_tumour(trained):
    """Most of the baseline map's positive mass lies on the tumour and its 1.8 mm border, a region
    of a fifth of the crop (measured, seeds 0-2 of this training: 0.56-0.73 on layer2, 0.49-0.71
    on layer3, 0.44-0.52 on layer4)."""
    net, _ = trained
    base, treat, y, masks = _pairs(16, 2)
    maps_b, maps_t, logits = response_gradcam(net, base, treat)
    assert maps_b.shape == maps_t.shape == (16, SIZE, SIZE) and maps_b.min() >= 0
    np.testing.assert_allclose(logits, predict_logits(net, base, treat), atol=1e-4)
    inside = [m[k].sum() / m.sum() for m, k in zip(maps_b, masks) if m.sum() > 0]
    area = float(masks.mean())
    assert BORDER_PX * SPACING_MM <= 2.0 and area < 0.25, area
    assert len(inside) >= 12 and np.median(inside) > 0.5, (np.median(inside), area)


def test_gradcam_is_the_response_logit_gradient_on_the_chosen_layer(trained):
    """Grad-CAM re-derived by hand on layer3, through the encoder's modules and the head:
    ReLU(sum_k mean(dlogit / dA_k) A_k), each timepoint with the other input held fixed."""
    import torch.nn.functional as F

    net, _ = trained
    e = net.encoder
    base, treat, _, _ = _pairs(4, 5)
    maps_b, maps_t, _ = response_gradcam(net, base, treat, layer="layer3")

    def layer3(x):  # TINY has no stem max pool
        return e.layer3(e.layer2(e.layer1(e.act(e.bn1(e.conv1(torch.as_tensor(x)))))))

    with torch.no_grad():
        f_base, f_treat = (e.layer4(layer3(x)).mean(dim=(2, 3)) for x in (base, treat))
    for x, maps, logit_of in ((base, maps_b, lambda f: net.head(torch.cat([f, f_treat, f_treat - f], 1))),
                              (treat, maps_t, lambda f: net.head(torch.cat([f_base, f, f - f_base], 1)))):
        a = layer3(x)
        grad, = torch.autograd.grad(logit_of(e.layer4(a).mean(dim=(2, 3))).sum(), a)
        cam = F.relu((grad.mean(dim=(2, 3), keepdim=True) * a).sum(1, keepdim=True))
        cam = F.interpolate(cam, size=(SIZE, SIZE), mode="bilinear", align_corners=False)[:, 0].detach().numpy()
        np.testing.assert_allclose(maps, cam / np.maximum(cam.max(axis=(1, 2), keepdims=True), 1e-12), atol=1e-4)
    with pytest.raises(InputError, match="layer must be one of"):
        response_gradcam(net, base, treat, layer="fc")


def test_bundle_round_trip_and_tampered_weights(trained, tmp_path):
    net, summary = trained
    base, treat, _, _ = _pairs(6, 3)
    ops = {"dlr": {"threshold": 0.4, "weight": 0.8}}
    path = save_dlr_bundle(tmp_path / "dlr", net, name="DLR-2", input_spec={"baseline": "pre", "step": "c2"},
                           operating_points=ops, training=summary, provenance={"step": "test"})
    model = load_dlr_bundle(path, device="cpu")
    expected = 1 / (1 + np.exp(-predict_logits(net, base, treat).astype(np.float64)))
    np.testing.assert_allclose(model.probabilities(base, treat), expected, rtol=1e-6)
    assert model.operating_points == ops and model.gradcam_layer == "layer2"
    with pytest.raises(InputError, match="already exists"):
        save_dlr_bundle(path, net, name="x", input_spec={"baseline": "pre", "step": "c2"}, operating_points=ops,
                        training=summary, provenance={})
    weights = path / "models" / "model.pt"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(InputError, match="SHA-256 mismatch"):
        load_dlr_bundle(path)


def test_imagenet_init_is_verified(tmp_path):
    from NACResponseLib.deep.dlr import build_network, load_imagenet_encoder

    full = build_network(DLRNetConfig())  # torchvision resnet18 layout
    state = {k: v for k, v in full.encoder.state_dict().items()}
    state["fc.weight"] = torch.zeros(1000, 512)
    ckpt = tmp_path / "resnet18-test.pth"
    torch.save(state, ckpt)
    other = build_network(DLRNetConfig(), seed=1)
    info = load_imagenet_encoder(other, ckpt)
    assert info["init"] == "imagenet" and info["sha256_verified_by"] == "unverified"
    torch.testing.assert_close(other.encoder.conv1.weight, full.encoder.conv1.weight)
    with pytest.raises(InputError, match="SHA-256 mismatch"):
        load_imagenet_encoder(other, ckpt, expected_sha256="0" * 64)
    with pytest.raises(InputError, match="standard widths"):
        load_imagenet_encoder(build_network(TINY), ckpt)


@pytest.mark.slow
def test_study_train_evaluate_predict_cli(tmp_path):
    """The command line end to end on a 14-patient synthetic ultrasound study (tiny settings)."""
    import json

    from NACResponseLib.cli import main
    from NACResponseLib.demo.synthetic import generate_cohort
    from NACResponseLib.study.importers import import_folder

    generate_cohort(tmp_path / "src", n_patients=14, seed=3, timepoints=("pre",), mc_fraction=0.0)
    store = import_folder(tmp_path / "src", tmp_path / "study")
    common = ["--size", "32", "--width", "8", "--epochs", "3", "--patience", "3", "--folds", "3", "--device", "cpu"]
    for step in ("c2", "c4"):
        assert main(["model", "dlr", "train", str(store.root), "--step", step, *common]) == 0
        assert main(["model", "dlr", "train", str(store.root), "--step", step, *common]) == 0  # reused
    models = [f"--model={s}={store.root / 'models' / f'dlr_{s}'}" for s in ("c2", "c4")]
    assert main(["model", "dlr", "evaluate", str(store.root), *models, "--bootstrap", "100", "--folds", "3"]) == 0
    ev = store.read_table("dlr_evaluation")
    assert set(ev["model"]) == {"DLR-2", "Clinical-2", "DLR-4", "Clinical-4"}
    table = store.read_table("dlr_stepwise")
    flags = store.read_table("dlr_stepwise_flags")
    n = len(flags)
    # every patient is flagged once or never: the table's counts add up to the cohort
    assert table["flagged"].sum() + table.loc[table["step"] == "not flagged", "evaluated"].sum() == n
    assert table.loc[table["step"] == "c2", "flagged"].item() == int((flags["flagged_at"] == "c2").sum())
    assert store.table_provenance("dlr_evaluation")["step"] == "model dlr evaluate"
    assert main(["model", "dlr", "predict", str(store.root / "models" / "dlr_c2"), "--study", str(store.root),
                 "--patients", "P001,P099", "--json"]) == 1  # P099 is not in the study
    pred = store.read_table("dlr_predictions")
    row = pred[pred["patient_id"] == "P001"].iloc[0]
    for tp in ("pre", "c2"):
        assert (store.root / row[f"gradcam_{tp}"]).is_file()
    from NACResponseSlicerLib.prediction_dlr import dlr_overlays, dlr_prediction, dlr_summary, is_dlr_bundle

    bundle = store.root / "models" / "dlr_c2"
    assert is_dlr_bundle(bundle) and not is_dlr_bundle(tmp_path)
    pred = dlr_prediction(store, bundle, "P001")
    assert dlr_summary(pred).startswith("DLR-2: P(response) = ")
    assert [o["timepoint"] for o in dlr_overlays(store, bundle, pred)] == ["pre", "c2"]
    assert {o["background"] for o in dlr_overlays(store, bundle, pred)} == {"us_bmode"}
    meta = json.loads((bundle / "configs" / "metadata.json").read_text())
    assert meta["nacresponse"]["operating_points"]["dlr"]["weight"] == 0.8
    assert "random initialisation" in meta["nacresponse"]["provenance"]["warning"]


def test_synthetic_ultrasound(synthetic_source):
    """2D B-mode at 0.1 mm with a hypoechoic tumour that follows the response; speckle is Rayleigh-like."""
    import json

    import SimpleITK as sitk

    truth = json.loads((synthetic_source / "ground_truth.json").read_text())
    for pid, p in truth["patients"].items():
        us = p["ultrasound"]
        areas = [us["timepoints"][tp]["area_mm2"] for tp in ("pre", "c2", "c4")]
        for tp in ("pre", "c2", "c4"):
            image = sitk.ReadImage(str(synthetic_source / pid / tp / "us_bmode.nii.gz"))
            mask = sitk.GetArrayFromImage(sitk.ReadImage(
                str(synthetic_source / pid / tp / "seg" / "GT_US__reference__us_bmode.nii.gz"))) > 0
            assert image.GetDimension() == 2 and abs(image.GetSpacing()[0] - 0.1) < 1e-6
            a = sitk.GetArrayFromImage(image).astype(float)
            if tp == "pre":
                assert a[mask].mean() < a[~mask].mean() - 15  # hypoechoic
        if p["volume_reduction"] > 0.5:
            assert areas[2] < areas[1] < areas[0]
        elif p["volume_reduction"] < 0:
            assert areas[2] >= areas[0]
    # Fully developed (Rayleigh) speckle: the SD of its log amplitude is pi/sqrt(24) neper = 5.57 dB
    # (Burckhardt, IEEE Trans Sonics Ultrason 1978); the image maps 50 dB onto 255 grey levels.
    from NACResponseLib.demo.ultrasound import bmode

    flat = bmode(np.random.default_rng(0), (200, 200), 0.1, lesion=np.zeros((200, 200), bool), lesion_echo=1,
                 lesion_texture=0, posterior=1, fat_depth_mm=-10).astype(float)
    sd_db = flat[90:110].std() * 50 / 255
    assert abs(sd_db - np.pi / np.sqrt(24) * 20 / np.log(10)) < 0.6, sd_db


def test_mri_inputs_are_2p5d_and_ultrasound_inputs_share_the_baseline_window(synthetic_study, synthetic_source):
    """MRI: three sequences on the largest tumour slice averaged with its neighbours, on the DCE grid;
    ultrasound: one image repeated; both timepoints cropped with the baseline's window size."""
    import json

    from NACResponseLib.deep.dlr_cohort import DLRInputSettings, paired_inputs

    mr = paired_inputs(synthetic_study, "c2", DLRInputSettings.for_modality("MR", size=32))
    assert mr.base.shape == (len(synthetic_study.cohort), 3, 32, 32) and not mr.failures
    base_item, treat_item = mr.items[0]
    assert len(base_item.slices) == 3 and base_item.channels == ["dce_early", "adc", "t2w"]
    assert not np.allclose(mr.base[0, 0], mr.base[0, 2])  # distinct sequences, not one repeated
    assert treat_item.window.half_mm == base_item.window.half_mm
    us = paired_inputs(synthetic_study, "c4", DLRInputSettings(size=32))
    assert us.reader == "GT_US" and us.base.shape[0] == len(synthetic_study.cohort)
    from NACResponseLib.deep.slices import IMAGENET_MEAN, IMAGENET_STD

    unit = us.base * IMAGENET_STD[None, :, None, None] + IMAGENET_MEAN[None, :, None, None]
    np.testing.assert_allclose(unit[:, 0], unit[:, 2], atol=1e-5)  # one image repeated
    # % volume reduction of a 2D outline: the sphere of the same cross-section, from the generator's areas
    truth = json.loads((synthetic_source / "ground_truth.json").read_text())["patients"]
    for pid, reduction in zip(us.patient_ids, us.volume_reduction_pct):
        areas = truth[pid]["ultrasound"]["timepoints"]
        expected = 100 * (1 - (areas["c4"]["area_mm2"] / areas["pre"]["area_mm2"]) ** 1.5)
        assert abs(reduction - expected) < 0.5, (pid, reduction, expected)


def test_interrupted_training_resumes_to_the_same_network(tmp_path):
    """Every epoch draws its randomness from (seed, epoch), so a resumed run ends where an
    uninterrupted one does."""
    base, treat, y, _ = _pairs(12, 4)
    config = TrainConfig(epochs=4, patience=4, batch_size=6, seed=1)
    whole, _ = train_network(base, treat, y, net_config=TINY, train_config=config)

    class Stop(Exception):
        pass

    def stop_after_two(done, total, message):
        if done == 2:
            raise Stop

    with pytest.raises(Stop):
        train_network(base, treat, y, net_config=TINY, train_config=config, work_dir=tmp_path, progress=stop_after_two)
    resumed, summary = train_network(base, treat, y, net_config=TINY, train_config=config, work_dir=tmp_path)
    assert [h["epoch"] for h in summary["history"]] == [0, 1, 2, 3]
    for (k, a), b in zip(whole.state_dict().items(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b, msg=k)


def test_augmentation_keeps_the_hypoechoic_tumour_dark():
    """Speckle-like (Rician) noise is the magnitude of a complex signal: applied to the
    ImageNet-normalised crop it would turn the dark tumour's negative values positive.  On the
    crop's [0, 1] scale the tumour stays darker than its surroundings in every augmented copy."""
    from NACResponseLib.deep.dlr import _augment, _augmenter
    from NACResponseLib.deep.slices import IMAGENET_MEAN, IMAGENET_STD, imagenet_normalise

    unit = np.full((3, SIZE, SIZE), 0.8, np.float32)
    disc = _disc((32, 32), 10) > 0
    unit[:, disc] = 0.1
    batch = torch.as_tensor(np.stack([imagenet_normalise(unit)] * 16))
    out = _augment(_augmenter(TrainConfig(modality="US")), batch, seed=0).numpy()
    back = out * IMAGENET_STD[None, :, None, None] + IMAGENET_MEAN[None, :, None, None]
    core = _disc((32, 32), 6) > 0  # inside the tumour whatever the flip and rotation
    ring = (_disc((32, 32), 20) > 0) & ~(_disc((32, 32), 14) > 0)
    assert (back[:, 0][:, core].mean(axis=1) < 0.3).all() and (back[:, 0][:, ring].mean(axis=1) > 0.6).all()


def test_few_cases_of_a_class_train_without_a_validation_split():
    base, treat, _, _ = _pairs(12, 6)
    y = np.array([1, 1, 1, 1] + [0] * 8)  # 4 responders < validation_min_class
    _, summary = train_network(base, treat, y, net_config=TINY, train_config=TrainConfig(epochs=1, batch_size=4))
    assert summary["n_validation"] == 0 and summary["n_train"] == 12


def test_validation_fraction_zero_holds_back_nobody():
    """``validation_fraction=0`` used to keep one patient of each class (of 3 or more) for validation."""
    from NACResponseLib.deep.dlr import validation_split

    y = np.array([1] * 6 + [0] * 10)
    train, val = validation_split(y, 0.0, seed=0)
    assert len(val) == 0 and train.tolist() == list(range(16))
    train, val = validation_split(y, 0.2, seed=0)
    assert sorted(np.bincount(y[val]).tolist()) == [1, 2] and len(train) + len(val) == 16
