"""ResNet-50: torchvision state-dict compatibility, weights verification, engine agreement."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from NACResponseLib.errors import InputError  # noqa: E402

# torchvision.models.resnet50().state_dict(): number of parameters published in torchvision's
# model table (weights ResNet50_Weights.IMAGENET1K_V1/V2, "num_params": 25557032).
TORCHVISION_RESNET50_PARAMS = 25_557_032


def torchvision_resnet50_layout() -> dict[str, tuple[int, ...]]:
    """Key -> shape of torchvision's resnet50 state dict, written from its architecture:
    conv1/bn1 stem, Bottleneck stages [3, 4, 6, 3] of widths 64..512 with expansion 4, a
    downsample (1x1 conv + BN) in each stage's first block, and fc 2048 -> 1000."""
    layout: dict[str, tuple[int, ...]] = {}

    def bn(prefix: str, c: int) -> None:
        for name in ("weight", "bias", "running_mean", "running_var"):
            layout[f"{prefix}.{name}"] = (c,)
        layout[f"{prefix}.num_batches_tracked"] = ()

    layout["conv1.weight"] = (64, 3, 7, 7)
    bn("bn1", 64)
    inplanes = 64
    for stage, (blocks, width) in enumerate([(3, 64), (4, 128), (6, 256), (3, 512)], start=1):
        for b in range(blocks):
            p = f"layer{stage}.{b}"
            layout[f"{p}.conv1.weight"] = (width, inplanes, 1, 1)
            bn(f"{p}.bn1", width)
            layout[f"{p}.conv2.weight"] = (width, width, 3, 3)
            bn(f"{p}.bn2", width)
            layout[f"{p}.conv3.weight"] = (width * 4, width, 1, 1)
            bn(f"{p}.bn3", width * 4)
            if b == 0:
                layout[f"{p}.downsample.0.weight"] = (width * 4, inplanes, 1, 1)
                bn(f"{p}.downsample.1", width * 4)
            inplanes = width * 4
    layout["fc.weight"] = (1000, 2048)
    layout["fc.bias"] = (1000,)
    return layout


def make_checkpoint(path, seed: int = 1):
    """A checkpoint file with torchvision's key names and shapes (not made from our model)."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in torchvision_resnet50_layout().items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(100, dtype=torch.long)
        elif key.endswith("running_var"):
            state[key] = torch.rand(shape, generator=g) + 0.5
        elif key.endswith("bn3.weight"):
            state[key] = torch.rand(shape, generator=g) * 0.2  # keeps the residual stream bounded
        elif len(shape) == 4:
            fan_in = shape[1] * shape[2] * shape[3]
            state[key] = torch.randn(shape, generator=g) * (2.0 / fan_in) ** 0.5
        else:
            state[key] = torch.randn(shape, generator=g) * 0.1
    torch.save(state, path)
    return state


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("weights") / "resnet50-test.pth"
    state = make_checkpoint(path)
    return path, state, hashlib.sha256(path.read_bytes()).hexdigest()


def test_state_dict_matches_torchvision_layout():
    from NACResponseLib.deep.resnet import ResNet50

    ours = {k: tuple(v.shape) for k, v in ResNet50().state_dict().items()}
    expected = torchvision_resnet50_layout()
    assert len(expected) == 320
    assert ours == expected
    assert list(ours) == list(expected)  # same order as torchvision too
    assert sum(p.numel() for p in ResNet50().parameters()) == TORCHVISION_RESNET50_PARAMS


def test_checkpoint_loads_strict_and_is_deterministic(checkpoint):
    from NACResponseLib.deep.engine import FeatureEngine, cosine_rows
    from NACResponseLib.deep.resnet import load_resnet50

    path, state, digest = checkpoint
    model, info = load_resnet50(path, expected_sha256=digest)
    loaded = model.state_dict()
    assert set(loaded) == set(state)
    for key in ("conv1.weight", "layer3.0.downsample.0.weight", "layer4.2.bn3.running_var", "fc.bias"):
        assert torch.equal(loaded[key], state[key])
    assert info["weights_sha256"] == digest and info["random_weights"] is False
    x = np.random.default_rng(0).normal(size=(3, 3, 64, 64)).astype(np.float32)
    eager = FeatureEngine(model, mode="eager", precision="fp32", batch_size=2)
    a, b = eager(x), eager(x)
    assert a.shape == (3, 2048)
    np.testing.assert_array_equal(a, b)  # deterministic
    with torch.inference_mode():  # the plain model, NCHW, batch 1: the reference path
        ref = np.concatenate([model.features(torch.from_numpy(x[i:i + 1])).numpy() for i in range(3)])
    frozen = FeatureEngine(model, mode="frozen", precision="fp32", batch_size=2)(x)  # batch 2 then 1
    assert cosine_rows(ref, a).min() > 0.99999
    assert cosine_rows(ref, frozen).min() > 0.9999
    assert np.abs(ref).max() > 0  # not a degenerate network


def test_sha256_verification(checkpoint, tmp_path):
    from NACResponseLib.deep.resnet import load_resnet50, verify_sha256

    path, _, digest = checkpoint
    with pytest.raises(InputError, match="SHA-256 mismatch"):
        load_resnet50(path, expected_sha256="0" * 64)
    copy = tmp_path / "w.pth"
    copy.write_bytes(path.read_bytes())
    (tmp_path / "w.pth.sha256").write_text("f" * 64 + "  w.pth\n")
    with pytest.raises(InputError, match="sidecar"):
        verify_sha256(copy)
    (tmp_path / "w.pth.sha256").write_text(digest + "  w.pth\n")
    assert verify_sha256(copy) == (digest, "sidecar w.pth.sha256")
    named = tmp_path / f"resnet50-{digest[:8]}.pth"  # torchvision's naming convention
    named.write_bytes(path.read_bytes())
    assert verify_sha256(named)[1] == "torchvision file-name prefix"
    wrong = tmp_path / "resnet50-0676ba61.pth"
    wrong.write_bytes(path.read_bytes())
    with pytest.raises(InputError, match="file-name prefix"):
        verify_sha256(wrong)
    assert verify_sha256(copy, digest)[1] == "argument"


def test_bad_weights_files(checkpoint, tmp_path):
    from NACResponseLib.deep.resnet import load_resnet50

    path, state, _ = checkpoint
    with pytest.raises(InputError, match="not found"):
        load_resnet50(tmp_path / "absent.pth")
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"this is not a checkpoint")
    with pytest.raises(InputError, match="not a readable PyTorch weights file"):
        load_resnet50(garbage)
    partial = tmp_path / "partial.pth"
    torch.save({k: v for k, v in state.items() if not k.startswith("layer4")}, partial)
    with pytest.raises(InputError, match="keys missing"):
        load_resnet50(partial)
    wrong_shape = tmp_path / "shape.pth"
    bad = dict(state)
    bad["layer1.0.conv2.weight"] = torch.zeros(64, 64, 1, 1)
    torch.save(bad, wrong_shape)
    with pytest.raises(InputError, match="do not fit ResNet-50"):
        load_resnet50(wrong_shape)
    pickled = tmp_path / "pickled.pth"
    torch.save({"conv1.weight": state["conv1.weight"], "payload": InputError("arbitrary object")}, pickled)
    with pytest.raises(InputError, match="not a readable PyTorch weights file"):
        load_resnet50(pickled)  # weights_only=True refuses arbitrary pickled objects


def test_no_weights_is_a_clear_error_and_random_is_marked(monkeypatch):
    from NACResponseLib.deep.resnet import WEIGHTS_ENV, load_resnet50

    monkeypatch.delenv(WEIGHTS_ENV, raising=False)
    with pytest.raises(InputError, match="no ResNet-50 weights.*--weights"):
        load_resnet50(None)
    model_a, info = load_resnet50(None, random_weights=True, seed=3)
    model_b, _ = load_resnet50(None, random_weights=True, seed=3)
    assert info["random_weights"] is True and "RANDOM" in info["weights"]
    assert torch.equal(model_a.state_dict()["layer2.1.conv2.weight"], model_b.state_dict()["layer2.1.conv2.weight"])


def test_weights_from_environment(checkpoint, monkeypatch):
    from NACResponseLib.deep.resnet import WEIGHTS_ENV, load_resnet50

    path, _, digest = checkpoint
    monkeypatch.setenv(WEIGHTS_ENV, str(path))
    _, info = load_resnet50(None)
    assert info["weights_sha256"] == digest


def test_bf16_only_when_accurate():
    """precision='auto' never picks bf16 unless the cosine check passes (and the CPU has native bf16)."""
    from NACResponseLib.deep.engine import FeatureEngine, native_bf16
    from NACResponseLib.deep.resnet import ResNet50

    torch.manual_seed(0)
    engine = FeatureEngine(ResNet50().eval(), mode="eager", precision="auto", batch_size=2)
    engine(np.zeros((1, 3, 32, 32), np.float32))
    assert engine.precision in ("fp32", "bf16")
    if not native_bf16():
        assert engine.precision == "fp32"


def test_folded_batchnorm_and_freeze_fallback(checkpoint, monkeypatch):
    from NACResponseLib.deep.engine import FeatureEngine, cosine_rows
    from NACResponseLib.deep.resnet import load_resnet50

    model, _ = load_resnet50(checkpoint[0])
    x = np.random.default_rng(1).normal(size=(2, 3, 48, 48)).astype(np.float32)
    with torch.inference_mode():
        ref = model.features(torch.from_numpy(x)).numpy()
    fused = FeatureEngine(model, mode="fused", precision="fp32")
    assert cosine_rows(ref, fused(x)).min() > 0.99999
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused._head.modules())

    def no_torchscript(*args, **kwargs):
        raise RuntimeError("TorchScript removed")

    monkeypatch.setattr(torch.jit, "trace", no_torchscript)
    engine = FeatureEngine(model, mode="frozen", precision="fp32")
    assert cosine_rows(ref, engine(x)).min() > 0.99999 and engine.mode == "fused"
