"""The trained model on disk: a MONAI bundle-style folder with verified weights.

::

    <model>/
      configs/metadata.json   MONAI bundle metadata + a ``nacresponse`` block: channels, spacing,
                              orientation, normalisation, labels, network, ROI, training-data hash,
                              metrics, provenance and the SHA-256 of the weights
      configs/inference.json  ``network_def`` for MONAI's bundle tooling (monai.bundle.ConfigParser)
      models/model.pt         a plain ``state_dict`` written with ``torch.save``

Loading recomputes the SHA-256 of ``model.pt`` and refuses a mismatch before anything is
deserialised; the weights are then read with ``torch.load(weights_only=True)``, which refuses
arbitrary pickled objects.  Nothing is ever downloaded.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..atomic import atomic_path, atomic_write_text
from ..errors import InputError
from ..provenance import read_json, sha256_file, strict_json
from .network import NetworkConfig, build_network
from .preprocessing import PreprocessConfig

METADATA = Path("configs") / "metadata.json"
INFERENCE = Path("configs") / "inference.json"
WEIGHTS = Path("models") / "model.pt"
FORMAT_VERSION = 1
LABELS = {"0": "background", "1": "tumour"}


@dataclass
class SegmentationModel:
    """A loaded, verified model ready for inference (``network`` is a torch module in eval mode)."""

    root: Path
    metadata: dict[str, Any]
    network: Any
    device: Any
    preprocess: PreprocessConfig
    network_config: NetworkConfig
    roi_size: tuple[int, int, int]
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def channels(self) -> tuple[str, ...]:
        return self.preprocess.channels

    @property
    def weights_sha256(self) -> str:
        return self.metadata["nacresponse"]["weights_sha256"]

    @property
    def identity(self) -> dict[str, Any]:
        """What a prediction's provenance records about the model."""
        nac = self.metadata["nacresponse"]
        return {"name": self.metadata.get("name", self.root.name), "path": str(self.root),
                "version": self.metadata.get("version"), "weights_sha256": nac["weights_sha256"],
                "training_data_sha256": nac.get("training_data_sha256"), "channels": list(self.channels),
                "architecture": nac["network"].get("architecture")}


def bundle_metadata(*, name: str, preprocess: PreprocessConfig, network: NetworkConfig,
                    roi_size: tuple[int, int, int], training_data_sha256: str, metrics: dict[str, Any],
                    provenance: dict[str, Any], description: str = "") -> dict[str, Any]:
    """metadata.json content: MONAI's bundle fields plus everything inference must reproduce."""
    from ..provenance import package_versions

    versions = package_versions()
    n = len(preprocess.channels)
    return {
        "schema": "https://github.com/Project-MONAI/MONAI-extra-test-data/releases/download/"
                  "0.8.1/meta_schema_20220324.json",
        "version": "1.0.0",
        "name": name,
        "monai_version": versions.get("monai"),
        "pytorch_version": versions.get("torch"),
        "numpy_version": versions.get("numpy"),
        "task": "Breast tumour segmentation on DCE-MRI",
        "description": description or "SegResNet trained with NACResponse on the user's labelled cases",
        "authors": "NACResponse",
        "copyright": "the user who trained it",
        "network_data_format": {
            "inputs": {"image": {
                "type": "image", "format": "magnitude", "modality": "MR", "num_channels": n,
                "spatial_shape": list(roi_size), "dtype": "float32", "value_range": [],
                "is_patch_data": True, "channel_def": {str(i): c for i, c in enumerate(preprocess.channels)}}},
            "outputs": {"pred": {
                "type": "image", "format": "segmentation", "num_channels": network.out_channels,
                "spatial_shape": list(roi_size), "dtype": "float32", "value_range": [0, 1],
                "is_patch_data": True, "channel_def": LABELS}},
        },
        "nacresponse": {
            "format_version": FORMAT_VERSION,
            "preprocess": preprocess.to_dict(),
            "array_order": "channel, x, y, z (MONAI convention; RAS)",
            "labels": LABELS,
            "network": network.to_dict(),
            "roi_size": list(roi_size),
            "training_data_sha256": training_data_sha256,
            "metrics": metrics,
            "provenance": provenance,
        },
    }


def save_bundle(out_dir: str | Path, state_dict: dict[str, Any], metadata: dict[str, Any]) -> Path:
    """Write a new bundle folder atomically (built aside, then renamed); never overwrites one."""

    def inference(meta: dict[str, Any]) -> dict[Path, str]:
        n_in = len(meta["nacresponse"]["preprocess"]["channels"])
        net = NetworkConfig.from_dict(meta["nacresponse"]["network"])
        config = {"bundle_root": ".", "network_def": {"_target_": "SegResNet", **net.monai_kwargs(n_in)},
                  "network": "$@network_def", "roi_size": meta["nacresponse"]["roi_size"]}
        return {INFERENCE: json.dumps(config, indent=2)}

    return write_weights_bundle(out_dir, state_dict, metadata, inference)


def write_weights_bundle(out_dir: str | Path, state_dict: dict[str, Any], metadata: dict[str, Any],
                         extra_files: Callable[[dict[str, Any]], dict[Path, str]] | None = None) -> Path:
    """The folder rules every trained network shares: ``models/model.pt`` (a plain state dict),
    its SHA-256 in ``metadata["nacresponse"]["weights_sha256"]``, ``configs/metadata.json`` and
    ``extra_files(metadata)`` (relative path -> text); built aside, then renamed; never overwrites."""
    import torch

    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise InputError(f"{out}: a model folder already exists here; choose a new folder (finished models "
                         "are never overwritten)")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        weights = staging / WEIGHTS
        weights.parent.mkdir(parents=True)
        with atomic_path(weights) as tmp:
            torch.save({k: v.detach().cpu() for k, v in state_dict.items()}, tmp)
        meta = json.loads(json.dumps(metadata, default=str))
        meta["nacresponse"]["weights_sha256"] = sha256_file(weights)
        atomic_write_text(staging / METADATA, strict_json(meta, indent=2))
        for rel, text in (extra_files(meta) if extra_files else {}).items():
            (staging / rel).parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(staging / rel, text)
        if out.exists():
            out.rmdir()
        os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out


def _sha256_uncached(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_metadata(path: str | Path) -> dict[str, Any]:
    """metadata.json of a bundle, with a clear error when the folder is not one."""
    root = Path(path)
    meta_path = root / METADATA
    if not root.is_dir():
        raise InputError(f"{root}: model folder not found")
    if not meta_path.is_file():
        raise InputError(f"{root}: not a model bundle ({METADATA} is missing)")
    try:
        meta = read_json(meta_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"{meta_path}: unreadable model metadata ({exc})") from None
    nac = meta.get("nacresponse") if isinstance(meta, dict) else None
    needed = ("preprocess", "network", "roi_size", "weights_sha256")
    if not isinstance(nac, dict) or any(k not in nac for k in needed):
        raise InputError(f"{meta_path}: not a NACResponse model (the 'nacresponse' block with {needed} is missing)")
    return meta


def read_verified_weights(root: Path, expected_sha256: str) -> dict[str, Any]:
    """``models/model.pt`` as a state dict of tensors, after its SHA-256 matched ``expected_sha256``
    (checked before anything is deserialised; then ``torch.load(weights_only=True)``)."""
    import torch

    weights = root / WEIGHTS
    if not weights.is_file():
        raise InputError(f"{root}: model weights {WEIGHTS} are missing")
    actual = _sha256_uncached(weights)  # never trust a cached hash for a security check
    if actual != expected_sha256:
        raise InputError(f"{weights}: SHA-256 mismatch (file {actual[:12]}..., metadata "
                         f"{str(expected_sha256)[:12]}...): the weights are corrupted or were replaced; "
                         "refusing to load them")
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means a bad file
        raise InputError(f"{weights}: cannot read the weights ({type(exc).__name__}: {exc})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InputError(f"{weights}: not a plain state_dict of tensors")
    return state


def load_bundle(path: str | Path, device: str | None = None) -> SegmentationModel:
    """Verify and load a bundle; CUDA is used when present unless ``device`` says otherwise."""
    import torch

    root = Path(path)
    meta = read_metadata(root)
    nac = meta["nacresponse"]
    try:
        preprocess = PreprocessConfig.from_dict(nac["preprocess"])
        net_config = NetworkConfig.from_dict(nac["network"])
        roi = tuple(int(r) for r in nac["roi_size"])
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{root / METADATA}: invalid model configuration ({exc})") from None
    state = read_verified_weights(root, nac["weights_sha256"])
    weights = root / WEIGHTS
    network = build_network(len(preprocess.channels), net_config)
    try:
        network.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise InputError(f"{weights}: weights do not fit the network in metadata.json ({first})") from None
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    network.to(dev).eval()
    return SegmentationModel(root=root, metadata=meta, network=network, device=dev, preprocess=preprocess,
                             network_config=net_config, roi_size=roi)
