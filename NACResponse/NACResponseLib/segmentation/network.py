"""The segmentation network: MONAI SegResNet with a small, configurable size.

SegResNet (Myronenko 2018; MONAI Auto3DSeg's default) was chosen over a UNet because its encoder is a
separate ``encode()`` step whose deepest output is the bottleneck that the deep-features issue pools
inside the tumour, because GroupNorm works with the batch sizes of 1-4 that fit a CPU, and because a
few thousand parameters already segment an enhancing lesion.  See the README, "Tumour segmentation".
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

ARCHITECTURE = "SegResNet"


@dataclass(frozen=True)
class NetworkConfig:
    """Size of the SegResNet; the defaults train in minutes on two CPU cores."""

    init_filters: int = 8
    blocks_down: tuple[int, ...] = (1, 2, 2)
    blocks_up: tuple[int, ...] = (1, 1)
    out_channels: int = 2  # background, tumour
    dropout_prob: float | None = None

    @property
    def stride(self) -> int:
        """Down-sampling factor from the input to the bottleneck (and required size divisor)."""
        return 2 ** (len(self.blocks_down) - 1)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["blocks_down"], d["blocks_up"] = list(self.blocks_down), list(self.blocks_up)
        d["architecture"] = ARCHITECTURE
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> NetworkConfig:
        d = dict(d)
        arch = d.pop("architecture", ARCHITECTURE)
        if arch != ARCHITECTURE:
            raise ValueError(f"unsupported architecture {arch!r} (this version builds {ARCHITECTURE})")
        d["blocks_down"], d["blocks_up"] = tuple(d["blocks_down"]), tuple(d["blocks_up"])
        return cls(**d)

    def monai_kwargs(self, in_channels: int) -> dict[str, Any]:
        """Arguments of ``monai.networks.nets.SegResNet`` (also written to the bundle's inference.json)."""
        return {"spatial_dims": 3, "in_channels": int(in_channels), "out_channels": self.out_channels,
                "init_filters": self.init_filters, "blocks_down": list(self.blocks_down),
                "blocks_up": list(self.blocks_up), "dropout_prob": self.dropout_prob,
                "norm": ["GROUP", {"num_groups": min(8, self.init_filters)}]}


def build_network(in_channels: int, config: NetworkConfig | None = None):
    """A freshly initialised SegResNet (torch module) for ``in_channels`` input channels."""
    from monai.networks.nets import SegResNet

    config = config or NetworkConfig()
    if len(config.blocks_up) != len(config.blocks_down) - 1:
        raise ValueError("blocks_up needs one entry fewer than blocks_down")
    kwargs = config.monai_kwargs(in_channels)
    kwargs["norm"] = tuple(kwargs["norm"])
    return SegResNet(**kwargs)
