"""The dual-input response network (deep-learning radiomics, DLR) and its training.

One shared-weight 2D encoder (MONAI's ResNet, torchvision's layout so an ImageNet ResNet-18/50
checkpoint loads unchanged) reads the baseline crop and the on-treatment crop; the two pooled
vectors are fused as ``[f_base, f_treat, f_treat - f_base]`` and a small head gives one response
logit (positive = responder, e.g. Miller-Payne G4-5).  The difference term hands the head the
change directly; concatenation keeps the baseline level too.

Training (``train_network``): MONAI augmentation (flip, small rotation, intensity scale/shift,
Rician noise = speckle-like for ultrasound, Gaussian for MRI; the intensity steps on the crop's
[0, 1] scale), AdamW with weight decay, the positive class weighted by n_neg / n_pos, early
stopping on a stratified validation split when each class has ``validation_min_class`` patients
(the best epoch's weights are kept), every random draw seeded per epoch so a run resumed from
its checkpoint (``checkpoint.pt``: weights, optimiser, epoch, best state) continues exactly.
CPU by default in tests; CUDA when present.

Grad-CAM (``response_gradcam``) explains the response logit on the map after one encoder stage
(``GRADCAM_LAYER``, recorded in the bundle): layer2, because the last stage's map is coarser than
a small crop's tumour (README, "Grad-CAM", has the measurements).

A bundle (``save_dlr_bundle`` / ``load_dlr_bundle``) follows the segmentation bundle's rules
(segmentation/bundle.py): plain state dict, SHA-256 checked before loading, no pickle.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..provenance import read_json, strict_json

log = logging.getLogger(__name__)

ARCHITECTURES = {"resnet18": ("basic", (2, 2, 2, 2), 1), "resnet50": ("bottleneck", (3, 4, 6, 3), 4)}
TORCHVISION_WIDTHS = (64, 128, 256, 512)
ENCODER_LAYERS = ("layer1", "layer2", "layer3", "layer4")
GRADCAM_LAYER = "layer2"  # output stride 4 without the stem max pool, 8 with it (README: Grad-CAM)
FORMAT_VERSION = 1
TASK = "Response prediction from two timepoints (dual-input DLR)"
CHECKPOINT = "checkpoint.pt"


@dataclass(frozen=True)
class DLRNetConfig:
    """The network: encoder layout and width, head size, dropout."""

    architecture: str = "resnet18"
    widths: tuple[int, ...] = TORCHVISION_WIDTHS  # (64, 128, 256, 512) = the ImageNet layout
    hidden: int = 64
    dropout: float = 0.3
    max_pool: bool = True  # False halves every stage's output stride: a finer Grad-CAM on small crops

    def __post_init__(self):
        if self.architecture not in ARCHITECTURES:
            raise InputError(f"architecture must be one of {sorted(ARCHITECTURES)}, got {self.architecture!r}")
        if len(self.widths) != 4 or min(self.widths) < 1:
            raise InputError(f"widths must be four positive channel counts, got {self.widths}")

    @property
    def feature_dim(self) -> int:
        return self.widths[-1] * ARCHITECTURES[self.architecture][2]

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "widths": list(self.widths)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DLRNetConfig:
        return cls(architecture=str(d["architecture"]), widths=tuple(int(w) for w in d["widths"]),
                   hidden=int(d["hidden"]), dropout=float(d["dropout"]), max_pool=bool(d.get("max_pool", True)))


@dataclass(frozen=True)
class TrainConfig:
    """Training defaults (see the README for why each was chosen)."""

    epochs: int = 40
    batch_size: int = 8
    learning_rate: float = 1e-3
    weight_decay: float = 1e-2
    patience: int = 8
    validation_fraction: float = 0.2
    validation_min_class: int = 5  # fewer responders (or non-responders) than this: no validation split
    modality: str = "US"  # US: Rician (speckle-like) noise; MR: Gaussian noise
    augment: bool = True
    rotate_degrees: float = 10.0
    class_weighting: bool = True
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def build_encoder(config: DLRNetConfig):
    """MONAI ResNet, 2D, no classifier, torchvision key names (no bias on the shortcut convolution)."""
    from monai.networks.nets import ResNet

    block, layers, _ = ARCHITECTURES[config.architecture]
    return ResNet(block=block, layers=list(layers), block_inplanes=list(config.widths), spatial_dims=2,
                  n_input_channels=3, conv1_t_size=7, conv1_t_stride=2, no_max_pool=not config.max_pool, feed_forward=False,
                  bias_downsample=False, shortcut_type="B")


def _module():
    import torch
    from torch import nn

    class DualInputNet(nn.Module):
        """``forward(base, treat)`` -> response logits (N,)."""

        def __init__(self, config: DLRNetConfig):
            super().__init__()
            self.config = config
            self.encoder = build_encoder(config)
            d = config.feature_dim
            self.head = nn.Sequential(nn.Dropout(config.dropout), nn.Linear(3 * d, config.hidden), nn.ReLU(),
                                      nn.Dropout(config.dropout), nn.Linear(config.hidden, 1))

        def activation(self, x: torch.Tensor, layer: str = "layer4") -> torch.Tensor:
            """The encoder's map after ``layer`` (one of ``ENCODER_LAYERS``): the Grad-CAM target."""
            e = self.encoder
            x = e.act(e.bn1(e.conv1(x)))
            x = e.maxpool(x) if self.config.max_pool else x
            for name in ENCODER_LAYERS[:ENCODER_LAYERS.index(layer) + 1]:
                x = getattr(e, name)(x)
            return x

        def pooled(self, activation: torch.Tensor, layer: str = "layer4") -> torch.Tensor:
            """The encoder's feature vector from the map after ``layer``: the later stages, then the mean."""
            for name in ENCODER_LAYERS[ENCODER_LAYERS.index(layer) + 1:]:
                activation = getattr(self.encoder, name)(activation)
            return activation.mean(dim=(2, 3))

        def fused_logit(self, f_base: torch.Tensor, f_treat: torch.Tensor) -> torch.Tensor:
            """The response logit from the two pooled feature vectors."""
            return self.head(torch.cat([f_base, f_treat, f_treat - f_base], dim=1))[:, 0]

        def forward(self, base: torch.Tensor, treat: torch.Tensor) -> torch.Tensor:
            return self.fused_logit(self.pooled(self.activation(base)), self.pooled(self.activation(treat)))

    return DualInputNet


def build_network(config: DLRNetConfig, *, seed: int = 0):
    import torch

    torch.manual_seed(seed)
    return _module()(config)


def load_imagenet_encoder(net, path: str | Path, expected_sha256: str | None = None) -> dict[str, Any]:
    """Initialise the encoder from a torchvision ImageNet checkpoint (``resnet18-f37072fd.pth`` /
    ``resnet50-0676ba61.pth``), verified by SHA-256; its ``fc`` is dropped.  Returns provenance."""
    from .resnet import read_state_dict, verify_sha256

    path = Path(path).expanduser()
    if not path.is_file():
        raise InputError(f"{path}: ImageNet weights file not found")
    if tuple(net.config.widths) != TORCHVISION_WIDTHS:
        raise InputError(f"{path}: ImageNet weights need the standard widths {TORCHVISION_WIDTHS}, "
                         f"the network has {tuple(net.config.widths)}")
    digest, how = verify_sha256(path, expected_sha256)
    state = {k: v for k, v in read_state_dict(path).items() if not k.startswith("fc.")}
    expected = set(net.encoder.state_dict())
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or unexpected:
        raise InputError(f"{path}: not a torchvision {net.config.architecture} checkpoint: {len(missing)} keys "
                         f"missing (e.g. {missing[:3]}), {len(unexpected)} unexpected (e.g. {unexpected[:3]})")
    try:
        net.encoder.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise InputError(f"{path}: weights do not fit {net.config.architecture} "
                         f"({' '.join(str(exc).split())[:300]})") from None
    return {"init": "imagenet", "weights": str(path), "weights_sha256": digest, "sha256_verified_by": how}


# ---------------------------------------------------------------------------------------------
# training
# ---------------------------------------------------------------------------------------------

def _augmenter(config: TrainConfig):
    """Per-image MONAI transforms on (3, H, W) ImageNet-normalised tensors.

    The intensity transforms act on the crop's [0, 1] scale (undone and redone around them):
    Rician noise is the magnitude of a complex signal, ``sqrt((x + n1)^2 + n2^2)``, so on the
    ImageNet-normalised values (negative for dark pixels) it would fold a hypoechoic tumour onto
    bright tissue; on [0, 1] it only adds speckle-like noise.  Rotation pads with 0 = black, as the
    crop does outside the image.
    """
    import math

    import torch
    from monai.transforms import (
        Compose,
        Lambda,
        RandFlip,
        RandGaussianNoise,
        RandRicianNoise,
        RandRotate,
        RandScaleIntensity,
        RandShiftIntensity,
    )

    from .slices import IMAGENET_MEAN, IMAGENET_STD

    mean, std = (torch.as_tensor(v)[:, None, None] for v in (IMAGENET_MEAN, IMAGENET_STD))
    noise = RandRicianNoise(prob=0.5, std=0.1, relative=True) if config.modality == "US" \
        else RandGaussianNoise(prob=0.5, std=0.05)
    return Compose([Lambda(lambda x: x * std + mean), RandFlip(prob=0.5, spatial_axis=1),
                    RandRotate(range_x=math.radians(config.rotate_degrees), prob=0.5, padding_mode="zeros"),
                    RandScaleIntensity(factors=0.1, prob=0.5), RandShiftIntensity(offsets=0.05, prob=0.5), noise,
                    Lambda(lambda x: (x - mean) / std)])


def _augment(transform, batch, seed: int):
    import torch

    transform.set_random_state(seed=seed)
    return torch.stack([torch.as_tensor(transform(x), dtype=torch.float32) for x in batch])


def validation_split(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified (train, validation) indices; at least one of each class in validation when possible.
    ``fraction <= 0`` asks for no validation split: every patient trains."""
    y = np.asarray(y).astype(int)
    if fraction <= 0:
        return np.arange(len(y)), np.zeros(0, dtype=int)
    rng = np.random.default_rng(seed)
    val = []
    for cls in (0, 1):
        idx = rng.permutation(np.flatnonzero(y == cls))
        k = int(round(len(idx) * fraction))
        if len(idx) >= 3:
            k = max(1, k)
        val.extend(idx[:k].tolist())
    val_idx = np.array(sorted(val), dtype=int)
    train_idx = np.setdiff1d(np.arange(len(y)), val_idx)
    return train_idx, val_idx


def _device(device: str | None):
    import torch

    return torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))


def predict_logits(net, base: np.ndarray, treat: np.ndarray, *, batch_size: int = 32, device=None) -> np.ndarray:
    import torch

    dev = next(net.parameters()).device if device is None else _device(device)
    net.eval()
    out = []
    with torch.inference_mode():
        for s in range(0, len(base), batch_size):
            b = torch.as_tensor(np.asarray(base[s:s + batch_size], np.float32), device=dev)
            t = torch.as_tensor(np.asarray(treat[s:s + batch_size], np.float32), device=dev)
            out.append(net(b, t).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def array_sha256(array) -> str:
    import hashlib

    return hashlib.sha256(np.ascontiguousarray(array, dtype=np.float32).tobytes()).hexdigest()


def _bce(logits, y, pos_weight):
    import torch.nn.functional as F

    return F.binary_cross_entropy_with_logits(logits, y, pos_weight=pos_weight)


def train_network(base: np.ndarray, treat: np.ndarray, y, *, net_config: DLRNetConfig | None = None,
                  train_config: TrainConfig | None = None, init_weights: str | Path | None = None,
                  init_sha256: str | None = None, work_dir: str | Path | None = None, device: str | None = None,
                  progress=None, cancel=None) -> tuple[Any, dict[str, Any]]:
    """Train on (N, 3, S, S) baseline / on-treatment crops and 0/1 labels; return (net, summary).

    ``init_weights`` None means random initialisation (recorded).  With ``work_dir``, a checkpoint
    is written after each epoch and an interrupted run with the same data and settings resumes.
    ``progress(epoch, epochs, message)`` is called after every epoch.
    """
    import torch

    from ..provenance import sha256_json

    net_config = net_config or DLRNetConfig()
    cfg = train_config or TrainConfig()
    y = np.asarray(y).astype(int)
    if len(np.unique(y)) < 2:
        raise InputError("DLR training needs responders and non-responders (one class only)")
    dev = _device(device)
    net = build_network(net_config, seed=cfg.seed)
    init = {"init": "random", "seed": cfg.seed,
            "note": "random initialisation (no ImageNet weights given)"} if init_weights is None \
        else load_imagenet_encoder(net, init_weights, init_sha256)
    net.to(dev)
    tr, va = validation_split(y, cfg.validation_fraction, cfg.seed)
    if len(va) == 0 or min(np.bincount(y, minlength=2)) < cfg.validation_min_class or len(np.unique(y[tr])) < 2:
        tr, va = np.arange(len(y)), np.zeros(0, int)  # too few to hold out: every patient trains, all epochs run
    n_pos, n_neg = int(y[tr].sum()), int(len(tr) - y[tr].sum())
    pos_weight = torch.tensor(n_neg / max(1, n_pos) if cfg.class_weighting else 1.0, device=dev)
    optimiser = torch.optim.AdamW(net.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    identity = sha256_json({"net": net_config.to_dict(), "train": cfg.to_dict(), "init": init,
                            "data": [array_sha256(a) for a in (base, treat)],
                            "y": y.tolist()})
    history: list[dict[str, float]] = []
    best = {"epoch": -1, "loss": float("inf"), "state": None}
    start, stale = 0, 0
    ckpt = Path(work_dir) / CHECKPOINT if work_dir else None
    if ckpt is not None and ckpt.is_file():
        saved = torch.load(ckpt, map_location=dev, weights_only=True)
        if saved.get("identity") == identity:
            net.load_state_dict(saved["model"])
            optimiser.load_state_dict(saved["optimiser"])
            start, stale = int(saved["epoch"]) + 1, int(saved["stale"])
            best = {"epoch": int(saved["best_epoch"]), "loss": float(saved["best_loss"]), "state": saved["best_state"]}
            history = read_json(saved["history"])
            log.info("resuming DLR training at epoch %d from %s", start, ckpt)
        else:
            log.warning("%s: checkpoint of another run (data or settings differ); starting afresh", ckpt)
    transform = _augmenter(cfg) if cfg.augment else None
    tb, tt = torch.as_tensor(base, dtype=torch.float32), torch.as_tensor(treat, dtype=torch.float32)
    ty = torch.as_tensor(y, dtype=torch.float32)
    for epoch in range(start, cfg.epochs):
        if cancel is not None:
            cancel.check()
        if stale >= cfg.patience and len(va):
            break
        net.train()
        rng = np.random.default_rng([cfg.seed, epoch])
        torch.manual_seed(cfg.seed * 100003 + epoch)
        order = tr[rng.permutation(len(tr))]
        losses = []
        for s in range(0, len(order), cfg.batch_size):
            idx = order[s:s + cfg.batch_size]
            if len(idx) < 2:  # batch norm needs two samples
                continue
            b, t = tb[idx], tt[idx]
            if transform is not None:
                b = _augment(transform, b, int(rng.integers(2**31)))
                t = _augment(transform, t, int(rng.integers(2**31)))
            logits = net(b.to(dev), t.to(dev))
            loss = _bce(logits, ty[idx].to(dev), pos_weight)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            losses.append(float(loss.detach()))
        record = {"epoch": epoch, "train_loss": float(np.mean(losses)) if losses else float("nan")}
        if len(va):
            logits = torch.as_tensor(predict_logits(net, base[va], treat[va], device=dev))
            record["val_loss"] = float(_bce(logits, ty[va], pos_weight.cpu()))
            from ..modelling.evaluation import roc_auc

            record["val_auc"] = roc_auc(y[va], logits.numpy())
            if record["val_loss"] < best["loss"] - 1e-4:
                best = {"epoch": epoch, "loss": record["val_loss"],
                        "state": {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}}
                stale = 0
            else:
                stale += 1
        history.append(record)
        if ckpt is not None:
            from ..atomic import atomic_path

            ckpt.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(ckpt) as tmp:
                torch.save({"identity": identity, "model": net.state_dict(), "optimiser": optimiser.state_dict(),
                            "epoch": epoch, "stale": stale, "best_epoch": best["epoch"],
                            "best_loss": best["loss"], "best_state": best["state"] or {},
                            "history": strict_json(history)}, tmp)
        if progress is not None:
            progress(epoch + 1, cfg.epochs, f"epoch {epoch + 1}: loss {record['train_loss']:.3f}"
                     + (f", val {record['val_loss']:.3f}" if "val_loss" in record else ""))
    if best["state"]:
        net.load_state_dict(best["state"])
    net.eval()
    summary = {"epochs_run": len(history), "best_epoch": best["epoch"] if best["state"] else len(history) - 1,
               "history": history, "n_train": int(len(tr)), "n_validation": int(len(va)),
               "positives_train": n_pos, "negatives_train": n_neg, "pos_weight": float(pos_weight),
               "init": init, "device": str(dev), "train_config": cfg.to_dict(), "network": net_config.to_dict()}
    return net, summary


# ---------------------------------------------------------------------------------------------
# Grad-CAM on the response logit
# ---------------------------------------------------------------------------------------------

def response_gradcam(net, base: np.ndarray, treat: np.ndarray, *,
                     layer: str = GRADCAM_LAYER) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Grad-CAM of the response logit for each input timepoint: (maps_base, maps_treat, logits).

    The target is the encoder's map after ``layer`` (one of ``ENCODER_LAYERS``); the logit's
    gradient flows back to it through the later stages and the pooling.  For one timepoint's map
    the other input is held fixed, so each map answers "where in this image does the response
    score come from".  Maps are ReLU'd, upsampled (bilinear) to the crop's pixels, scaled to [0, 1].
    """
    import torch

    from .gradcam import grad_cam

    if layer not in ENCODER_LAYERS:
        raise InputError(f"Grad-CAM layer must be one of {', '.join(ENCODER_LAYERS)}, got {layer!r}")
    net = net.eval()
    dev = next(net.parameters()).device
    b = torch.as_tensor(np.asarray(base, np.float32), device=dev)
    t = torch.as_tensor(np.asarray(treat, np.float32), device=dev)
    with torch.no_grad():
        fb, ft = net.pooled(net.activation(b)), net.pooled(net.activation(t))
        logits = net.fused_logit(fb, ft).cpu().numpy()

    def target(x):
        return net.activation(x, layer)

    maps_b = grad_cam(target, lambda a: net.fused_logit(net.pooled(a, layer), ft), b)
    maps_t = grad_cam(target, lambda a: net.fused_logit(fb, net.pooled(a, layer)), t)
    return maps_b, maps_t, logits


# ---------------------------------------------------------------------------------------------
# the bundle
# ---------------------------------------------------------------------------------------------

@dataclass
class DLRModel:
    """A loaded, verified DLR bundle."""

    root: Path
    metadata: dict[str, Any]
    network: Any
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def nac(self) -> dict[str, Any]:
        return self.metadata["nacresponse"]

    @property
    def operating_points(self) -> dict[str, dict[str, float]]:
        return self.nac["operating_points"]

    @property
    def identity(self) -> dict[str, Any]:
        return {"name": self.metadata.get("name", self.root.name), "path": str(self.root),
                "weights_sha256": self.nac["weights_sha256"], "step": self.nac["input"]["step"],
                "architecture": self.nac["network"]["architecture"]}

    @property
    def gradcam_layer(self) -> str:
        """The encoder layer its Grad-CAM maps are taken on (bundles before it was recorded: layer4)."""
        return str(self.nac.get("gradcam", {}).get("layer", "layer4"))

    def probabilities(self, base: np.ndarray, treat: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-predict_logits(self.network, base, treat).astype(np.float64)))


def save_dlr_bundle(out_dir: str | Path, net, *, name: str, input_spec: dict[str, Any],
                    operating_points: dict[str, Any], training: dict[str, Any], provenance: dict[str, Any],
                    gradcam_layer: str = GRADCAM_LAYER) -> Path:
    """Write the bundle: configs/metadata.json (config, operating points, training summary,
    provenance, the Grad-CAM layer, weights SHA-256) and models/model.pt."""
    if gradcam_layer not in ENCODER_LAYERS:
        raise InputError(f"Grad-CAM layer must be one of {', '.join(ENCODER_LAYERS)}, got {gradcam_layer!r}")
    from ..provenance import package_versions
    from ..segmentation.bundle import write_weights_bundle

    versions = package_versions()
    meta = {"version": "1.0.0", "name": name, "task": TASK, "authors": "NACResponse",
            "copyright": "the user who trained it", "monai_version": versions.get("monai"),
            "pytorch_version": versions.get("torch"), "numpy_version": versions.get("numpy"),
            "description": f"Dual-input ResNet ({net.config.architecture}) on {input_spec['baseline']} and "
                           f"{input_spec['step']} crops -> response logit",
            "nacresponse": {"format_version": FORMAT_VERSION, "kind": "dlr", "network": net.config.to_dict(),
                            "input": input_spec, "operating_points": operating_points, "training": training,
                            "gradcam": {"layer": gradcam_layer, "target": "response logit",
                                        "maps": "ReLU, bilinear to the crop's pixels, peak 1"},
                            "provenance": provenance}}
    return write_weights_bundle(out_dir, net.state_dict(), meta)


def load_dlr_bundle(path: str | Path, device: str | None = None) -> DLRModel:
    """Verify (SHA-256 before deserialising) and load a DLR bundle; refuse a tampered one."""
    from ..segmentation.bundle import METADATA, read_verified_weights

    root = Path(path)
    meta_path = root / METADATA
    if not meta_path.is_file():
        raise InputError(f"{root}: not a DLR model bundle ({METADATA} is missing)")
    try:
        meta = read_json(meta_path.read_text(encoding="utf-8"))
        nac = meta["nacresponse"]
        if nac.get("kind") != "dlr":
            raise KeyError("kind is not 'dlr'")
        config = DLRNetConfig.from_dict(nac["network"])
        for key in ("input", "operating_points", "weights_sha256"):
            nac[key]  # noqa: B018 - presence check
    except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{meta_path}: not a NACResponse DLR model ({exc})") from None
    state = read_verified_weights(root, nac["weights_sha256"])
    net = build_network(config)
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise InputError(f"{root}: weights do not fit the network in metadata.json "
                         f"({str(exc).splitlines()[0]})") from None
    net.to(_device(device)).eval()
    return DLRModel(root=root, metadata=meta, network=net)
