"""ResNet-50 with torchvision's exact module layout, so an ImageNet checkpoint loads unchanged.

torchvision is not a dependency; this re-implements ``torchvision.models.resnet50`` (v1.5:
stride on the 3x3 convolution of each Bottleneck) with the same attribute names, giving the
same 320 state-dict keys (``conv1``, ``bn1``, ``layer1..layer4`` with ``downsample.0/1``,
``fc``).  Weights come only from a file the user gives, verified by SHA-256 and read with
``torch.load(weights_only=True)`` (no arbitrary pickle).  Nothing is downloaded.

This module imports torch at import time; the rest of the package imports it lazily.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import InputError
from ..provenance import sha256_file

log = logging.getLogger(__name__)

#: (blocks, planes, first stride) of the four stages of ResNet-50.
RESNET50_STAGES = ((3, 64, 1), (4, 128, 2), (6, 256, 2), (3, 512, 2))
FEATURE_DIM = 2048
#: torchvision's file naming: ``resnet50-<first hex digits of the SHA-256>.pth``.
_NAME_HASH = re.compile(r"-([0-9a-f]{8,64})\.pth?$")
#: Environment variable naming a default weights file (the Slicer settings set it too).
WEIGHTS_ENV = "NACRESPONSE_RESNET50_WEIGHTS"


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet50(nn.Module):
    """ResNet-50; ``forward`` returns ImageNet logits, ``features`` the 2048-d pooled vector."""

    def __init__(self, num_classes: int = 1000):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        inplanes = 64
        for index, (blocks, planes, stride) in enumerate(RESNET50_STAGES, start=1):
            layers = []
            for b in range(blocks):
                downsample = None
                if b == 0 and (stride != 1 or inplanes != planes * Bottleneck.expansion):
                    downsample = nn.Sequential(
                        nn.Conv2d(inplanes, planes * Bottleneck.expansion, 1, stride=stride, bias=False),
                        nn.BatchNorm2d(planes * Bottleneck.expansion))
                layers.append(Bottleneck(inplanes, planes, stride if b == 0 else 1, downsample))
                inplanes = planes * Bottleneck.expansion
            setattr(self, f"layer{index}", nn.Sequential(*layers))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(FEATURE_DIM, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        # torchvision's initialisation (used only for --random-weights test runs).
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        """Last convolutional map (N, 2048, H/32, W/32): the Grad-CAM target layer."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.avgpool(self.feature_map(x)), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


class FeatureHead(nn.Module):
    """Wraps a ResNet50 so that ``forward`` returns the pooled features (for tracing/compiling)."""

    def __init__(self, model: ResNet50):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.features(x)


def fold_batchnorm(model: ResNet50) -> ResNet50:
    """A copy with every BatchNorm folded into the preceding convolution (inference only).

    ``conv(x) * g / sqrt(v + eps) + (b - m * g / sqrt(v + eps))`` is one convolution with a bias,
    which saves a full pass over every activation map.
    """
    import copy

    folded = copy.deepcopy(model).eval()

    def fold(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        out = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, stride=conv.stride,
                        padding=conv.padding, bias=True)
        with torch.no_grad():
            out.weight.copy_(conv.weight * scale[:, None, None, None])
            out.bias.copy_(bn.bias - bn.running_mean * scale)
        return out

    with torch.no_grad():
        folded.conv1, folded.bn1 = fold(folded.conv1, folded.bn1), nn.Identity()
        for stage in (folded.layer1, folded.layer2, folded.layer3, folded.layer4):
            for block in stage:
                for i in (1, 2, 3):
                    conv, bn = getattr(block, f"conv{i}"), getattr(block, f"bn{i}")
                    setattr(block, f"conv{i}", fold(conv, bn))
                    setattr(block, f"bn{i}", nn.Identity())
                if block.downsample is not None:
                    block.downsample = nn.Sequential(fold(block.downsample[0], block.downsample[1]))
    return folded


def verify_sha256(path: Path, expected: str | None = None) -> tuple[str, str]:
    """Check a weights file against an expected SHA-256.

    The expectation comes from ``expected``, else a sidecar ``<file>.sha256``, else the hash
    prefix in torchvision's file name (``resnet50-0676ba61.pth``).  Returns (sha256, how
    verified); ``how`` is ``"unverified"`` when there was nothing to compare with.
    """
    actual = sha256_file(path)
    how = "unverified"
    sidecar = path.with_name(path.name + ".sha256")
    if expected:
        how = "argument"
    elif sidecar.is_file():
        text = sidecar.read_text().split()
        if not text:
            raise InputError(f"{sidecar}: empty checksum file")
        expected, how = text[0], f"sidecar {sidecar.name}"
    elif (match := _NAME_HASH.search(path.name)) is not None:
        expected, how = match.group(1), "torchvision file-name prefix"
    if expected:
        expected = expected.strip().lower()
        if not re.fullmatch(r"[0-9a-f]{8,64}", expected):
            raise InputError(f"{path}: expected SHA-256 {expected!r} ({how}) is not a hex digest")
        if not actual.startswith(expected):
            raise InputError(f"{path}: SHA-256 mismatch ({how}): expected {expected}, file has {actual}; "
                             "the weights file is corrupt or not the one intended")
    else:
        log.warning("%s: no expected SHA-256 given (argument or .sha256 sidecar); recording %s", path, actual)
    return actual, how


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a checkpoint with ``weights_only=True``; accept a bare state dict or {'state_dict': ...}."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: ResNet-50 weights file not found")
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle, zip and weights-only errors all mean "not a usable checkpoint"
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise InputError(f"{path}: not a readable PyTorch weights file ({first})") from None
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise InputError(f"{path}: does not hold a state dict of tensors (a torchvision resnet50 checkpoint)")
    return obj


def load_resnet50(weights: str | Path | None = None, *, expected_sha256: str | None = None,
                  random_weights: bool = False, seed: int = 0) -> tuple[ResNet50, dict[str, Any]]:
    """Build ResNet-50 and load weights; return (model in eval mode, provenance of the weights).

    ``weights`` None falls back to the ``NACRESPONSE_RESNET50_WEIGHTS`` environment variable.
    Without a file, ``random_weights=True`` gives torchvision's random initialisation (seeded),
    for tests and demos only; otherwise a clear :class:`InputError` is raised.
    """
    if weights is None and not random_weights and os.environ.get(WEIGHTS_ENV):
        weights = os.environ[WEIGHTS_ENV]
    if weights is None:
        if not random_weights:
            raise InputError(
                "no ResNet-50 weights: pass --weights FILE (a torchvision ImageNet resnet50 checkpoint, e.g. "
                f"resnet50-0676ba61.pth, obtained separately) or set {WEIGHTS_ENV}; --random-weights exists "
                "only for testing and gives meaningless features")
        torch.manual_seed(seed)
        model = ResNet50()
        info = {"weights": "RANDOM (testing only; features are not ImageNet features)",
                "random_weights": True, "seed": seed}
        return model.eval(), info
    path = Path(weights).expanduser()
    if not path.is_file():
        raise InputError(f"{path}: ResNet-50 weights file not found")
    digest, how = verify_sha256(path, expected_sha256)
    state = read_state_dict(path)
    model = ResNet50(num_classes=state["fc.weight"].shape[0] if "fc.weight" in state else 1000)
    expected_keys = set(model.state_dict())
    missing, unexpected = sorted(expected_keys - set(state)), sorted(set(state) - expected_keys)
    if missing or unexpected:
        raise InputError(f"{path}: not a torchvision resnet50 state dict: {len(missing)} keys missing "
                         f"(e.g. {missing[:3]}), {len(unexpected)} unexpected (e.g. {unexpected[:3]})")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        detail = " ".join(str(exc).split())[:300]
        raise InputError(f"{path}: weights do not fit ResNet-50 ({detail})") from None
    info = {"weights": str(path), "weights_sha256": digest, "sha256_verified_by": how, "random_weights": False}
    return model.eval(), info
