"""Training the segmentation network on the user's labelled cases.

Cases are split by patient (never by timepoint: the same tumour must not sit on both sides),
prepared once on the network grid, and sampled with MONAI's foreground-balanced crops plus flip,
in-plane 90-degree rotation and intensity augmentation.  The loss is Dice + cross-entropy; every
``val_every`` epochs the whole validation cases are segmented by sliding window and scored with
Dice; the best weights are kept and training stops after ``patience`` validations without
improvement (or at ``max_epochs`` / ``max_seconds``).  Seeds make runs repeatable on one machine.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..imageio import read_image
from ..progress import CancelToken
from ..provenance import collect, sha256_file, sha256_json
from .bundle import bundle_metadata, save_bundle
from .network import NetworkConfig, build_network
from .preprocessing import PreprocessConfig, label_on_grid, prepare_case

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainingConfig:
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    network: NetworkConfig = field(default_factory=NetworkConfig)
    roi_size: tuple[int, int, int] = (32, 32, 16)  # x, y, z voxels of the network grid
    max_epochs: int = 40
    patience: int = 5  # validations without improvement before stopping
    val_every: int = 2
    batch_size: int = 1  # cases per step (each gives samples_per_case crops): many small steps
    samples_per_case: int = 2
    pos: int = 1  # foreground-centred : background-centred crop ratio
    neg: int = 1
    learning_rate: float = 3e-3
    weight_decay: float = 1e-5
    val_fraction: float = 0.25
    seed: int = 0
    augment: bool = True
    max_seconds: float | None = None  # wall-clock budget; the best model so far is kept

    def __post_init__(self):
        if any(int(r) % self.network.stride for r in self.roi_size):
            raise ValueError(f"roi_size {self.roi_size} must be divisible by {self.network.stride} "
                             f"(the network down-samples {len(self.network.blocks_down) - 1} times)")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["preprocess"], d["network"] = self.preprocess.to_dict(), self.network.to_dict()
        d["roi_size"] = list(self.roi_size)
        return d


@dataclass
class TrainingCase:
    """One labelled examination: channel image files by key, a label file, a split group."""

    case_id: str
    channels: dict[str, str]
    label: str
    group: str  # cases of one group (patient) go to the same split
    label_value: int = 1


def split_cases(cases: Sequence[TrainingCase], val_fraction: float, seed: int
                ) -> tuple[list[TrainingCase], list[TrainingCase]]:
    """Patient-level split: a seeded shuffle of the groups, at least one group on each side."""
    groups = sorted({c.group for c in cases})
    if len(groups) < 2:
        raise InputError(f"training needs labelled cases from at least 2 patients (got {len(groups)})")
    rng = np.random.default_rng(seed)
    order = [groups[i] for i in rng.permutation(len(groups))]
    n_val = min(len(groups) - 1, max(1, int(round(val_fraction * len(groups)))))
    val_groups = set(order[:n_val])
    return ([c for c in cases if c.group not in val_groups], [c for c in cases if c.group in val_groups])


def training_data_hash(cases: Sequence[TrainingCase]) -> str:
    """SHA-256 over every case's id and the contents of its channel and label files."""
    return sha256_json(sorted(
        [c.case_id, {k: sha256_file(p) for k, p in sorted(c.channels.items())}, sha256_file(c.label),
         c.label_value] for c in cases))


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice of two binary arrays; 1.0 when both are empty."""
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    total = a.sum() + b.sum()
    return 1.0 if total == 0 else float(2.0 * np.logical_and(a, b).sum() / total)


def _prepare(cases: Sequence[TrainingCase], config: TrainingConfig) -> list[dict[str, Any]]:
    items = []
    for c in cases:
        prepared = prepare_case(c.channels, config.preprocess, c.case_id)
        label = label_on_grid(read_image(c.label), prepared.grid, c.label_value)
        items.append({"image": prepared.array, "label": label[None].astype(np.float32), "id": c.case_id})
    return items


def _transforms(config: TrainingConfig):
    from monai.transforms import (
        Compose,
        RandCropByPosNegLabeld,
        RandFlipd,
        RandRotate90d,
        RandScaleIntensityd,
        RandShiftIntensityd,
        SpatialPadd,
    )

    keys = ["image", "label"]
    roi = list(config.roi_size)
    steps = [SpatialPadd(keys=keys, spatial_size=roi),
             RandCropByPosNegLabeld(keys=keys, label_key="label", spatial_size=roi, pos=config.pos, neg=config.neg,
                                    num_samples=config.samples_per_case, allow_smaller=False)]
    if config.augment:
        steps += [RandFlipd(keys=keys, prob=0.5, spatial_axis=0), RandFlipd(keys=keys, prob=0.5, spatial_axis=1),
                  RandFlipd(keys=keys, prob=0.5, spatial_axis=2),
                  RandRotate90d(keys=keys, prob=0.25, spatial_axes=(0, 1)),
                  RandScaleIntensityd(keys="image", factors=0.1, prob=0.5),
                  RandShiftIntensityd(keys="image", offsets=0.1, prob=0.5)]
    compose = Compose(steps)
    compose.set_random_state(seed=config.seed)
    return compose


def _largest_component(mask: np.ndarray) -> np.ndarray:
    """Validation scores the single-lesion output that inference produces."""
    from scipy import ndimage

    labels, n = ndimage.label(mask, structure=np.ones((3, 3, 3)))
    if n <= 1:
        return mask
    return labels == (int(np.argmax(np.bincount(labels.ravel())[1:])) + 1)


def _validate(network, items: list[dict[str, Any]], config: TrainingConfig, device) -> list[float]:
    import torch
    from monai.inferers import sliding_window_inference

    network.eval()
    scores = []
    with torch.no_grad():
        for item in items:
            x = torch.from_numpy(item["image"][None]).to(device)
            logits = sliding_window_inference(x, list(config.roi_size), 4, network, overlap=0.25, mode="gaussian")
            pred = _largest_component(logits.argmax(dim=1)[0].cpu().numpy() > 0)
            scores.append(dice(pred, item["label"][0] > 0))
    network.train()
    return scores


def train_model(cases: Sequence[TrainingCase], out_dir: str | Path, config: TrainingConfig | None = None, *,
                name: str | None = None, progress: Callable[[int, int, str], None] | None = None,
                cancel: CancelToken | None = None, device: str | None = None, threads: int | None = None,
                extra_provenance: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train, then write the best model as a bundle in ``out_dir``; return the metrics.

    ``threads``: torch CPU threads while training (None: torch's default).  On a busy machine one
    thread is often faster than several, which then wait for each other.
    """
    import torch
    from monai.data import DataLoader, Dataset
    from monai.losses import DiceCELoss
    from monai.utils import set_determinism

    config = config or TrainingConfig()
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise InputError(f"{out_dir}: a model folder already exists here; choose a new folder")
    cases = list(cases)
    train_cases, val_cases = split_cases(cases, config.val_fraction, config.seed)
    data_hash = training_data_hash(cases)
    start = time.perf_counter()
    set_determinism(seed=config.seed)
    previous_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(int(threads))
    try:
        train_items, val_items = _prepare(train_cases, config), _prepare(val_cases, config)
        if not any(item["label"].any() for item in train_items):
            raise InputError("every training label is empty after resampling; nothing to learn")
        dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        network = build_network(len(config.preprocess.channels), config.network).to(dev)
        loader = DataLoader(Dataset(train_items, transform=_transforms(config)), batch_size=config.batch_size,
                            shuffle=True, num_workers=0, generator=torch.Generator().manual_seed(config.seed))
        loss_fn = DiceCELoss(to_onehot_y=True, softmax=True, batch=True)  # batch Dice: no 0/0 on empty crops
        optimiser = torch.optim.AdamW(network.parameters(), lr=config.learning_rate,
                                      weight_decay=config.weight_decay)
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=max(1, config.max_epochs))
        best, best_epoch, best_state, waited, history, stopped = -1.0, 0, None, 0, [], "max_epochs"
        for epoch in range(1, config.max_epochs + 1):
            if cancel is not None:
                cancel.check()
            network.train()
            losses = []
            for batch in loader:
                x, y = batch["image"].to(dev), batch["label"].to(dev)
                optimiser.zero_grad(set_to_none=True)
                loss = loss_fn(network(x), y)
                loss.backward()
                optimiser.step()
                losses.append(float(loss.detach()))
            scheduler.step()
            record = {"epoch": epoch, "loss": float(np.mean(losses)) if losses else float("nan")}
            if epoch % config.val_every == 0 or epoch == config.max_epochs:
                scores = _validate(network, val_items, config, dev)
                record["val_dice"] = float(np.mean(scores))
                if record["val_dice"] > best:
                    best, best_epoch, waited = record["val_dice"], epoch, 0
                    best_state = copy.deepcopy(network.state_dict())
                else:
                    waited += 1
            history.append(record)
            log.info("epoch %d: %s", epoch, record)
            if progress is not None:
                progress(epoch, config.max_epochs, f"loss {record['loss']:.3f} val Dice "
                         f"{record.get('val_dice', float('nan')):.3f}")
            if waited >= config.patience:
                stopped = "early_stopping"
                break
            if config.max_seconds is not None and time.perf_counter() - start > config.max_seconds:
                stopped = "time_budget"
                break
    finally:
        set_determinism(seed=None)
        torch.set_num_threads(previous_threads)
    metrics = {"val_dice_mean": best, "best_epoch": best_epoch, "epochs_run": len(history), "stopped": stopped,
               "n_train_cases": len(train_cases), "n_val_cases": len(val_cases),
               "val_cases": [c.case_id for c in val_cases], "train_cases": [c.case_id for c in train_cases],
               "seconds": round(time.perf_counter() - start, 1), "history": history}
    provenance = collect(step="seg train", parameters=config.to_dict(),
                         extra={"training_data_sha256": data_hash, **(extra_provenance or {})})
    meta = bundle_metadata(name=name or out_dir.name, preprocess=config.preprocess, network=config.network,
                           roi_size=config.roi_size, training_data_sha256=data_hash, metrics=metrics,
                           provenance=provenance)
    save_bundle(out_dir, best_state if best_state is not None else network.state_dict(), meta)
    return metrics
