"""Fast, deterministic ResNet-50 inference on batches of slices.

What makes it fast on a CPU (each choice measured by ``benchmarks/deep_features.py``):
batches of slices; ``torch.inference_mode``; channels-last memory layout (oneDNN's native
layout for convolutions); the model traced and frozen with ``torch.jit.freeze`` +
``optimize_for_inference`` (batch norm folded into the convolutions, convolution + ReLU +
add fused by oneDNN); a thread count that respects the cores this process may use.  bf16 is
used only where the CPU has native bf16 and the features keep a cosine >= 0.999 to fp32 on
the first batch.  On a GPU the eager model runs in fp32.  ``torch.compile`` needs a C
compiler and minutes of compilation per process, so it is opt-in (``mode="compile"``).
"""

from __future__ import annotations

import logging
import os
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

MODES = ("auto", "eager", "fused", "frozen", "compile")
PRECISIONS = ("auto", "fp32", "bf16")
BF16_MIN_COSINE = 0.999


def available_cores() -> int:
    """Cores this process may run on (CPU affinity / cgroup-limited containers)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def configure_threads(threads: int | None = None) -> int:
    """Set torch's intra-op threads: ``threads``, else OMP_NUM_THREADS, else the available cores."""
    import torch

    if threads is None:
        env = os.environ.get("OMP_NUM_THREADS", "")
        threads = int(env) if env.isdigit() and int(env) > 0 else available_cores()
    threads = max(1, min(int(threads), available_cores()))
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return threads


def native_bf16() -> bool:
    """True when the CPU has bf16 instructions (AVX512-BF16 / AMX); otherwise bf16 is emulated and slow."""
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of matching rows (1.0 for two all-zero rows)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    dot = (a * b).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = dot / (na * nb)
    return np.where((na == 0) & (nb == 0), 1.0, np.nan_to_num(cos))


class FeatureEngine:
    """Runs a :class:`~NACResponseLib.deep.resnet.ResNet50` on (N, 3, 224, 224) arrays -> (N, 2048).

    ``mode``: ``auto`` (frozen on CPU, eager on GPU), ``eager``, ``fused`` (batch norm folded into
    the convolutions, eager), ``frozen`` (TorchScript freeze: folding + oneDNN fusions) or ``compile``;
    ``precision``: ``auto`` (bf16 only if native and accurate), ``fp32`` or ``bf16``.
    """

    def __init__(self, model, *, batch_size: int = 8, mode: str = "auto", precision: str = "auto",
                 device: str | None = None, threads: int | None = None):
        import torch

        from .resnet import FeatureHead, fold_batchnorm

        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        self.batch_size = max(1, int(batch_size))
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.threads = configure_threads(threads) if self.device.type == "cpu" else None
        if mode == "auto":
            mode = "frozen" if self.device.type == "cpu" else "eager"
        self.mode = mode
        self.requested_precision = precision
        self.precision = "fp32" if precision == "auto" else precision
        self._check_bf16 = precision == "auto" and self.device.type == "cpu" and native_bf16()
        self.channels_last = True
        self._head = FeatureHead(fold_batchnorm(model) if mode == "fused" else model).eval().to(self.device)
        self._head = self._head.to(memory_format=torch.channels_last)
        self._runner = None

    # ---- set-up ---------------------------------------------------------------------------
    def _build(self, example) -> None:
        import torch

        if self.mode == "frozen":
            import warnings

            try:
                with torch.no_grad(), warnings.catch_warnings():
                    # TorchScript is deprecated in favour of torch.compile, which needs a C compiler
                    # and about a minute per process; freezing still works and is measured here.
                    warnings.simplefilter("ignore", DeprecationWarning)
                    traced = torch.jit.trace(self._head, example, check_trace=False)
                    self._runner = torch.jit.optimize_for_inference(torch.jit.freeze(traced))
            except Exception as exc:  # a torch without TorchScript: fold batch norm by hand instead
                from .resnet import FeatureHead, fold_batchnorm

                log.warning("TorchScript freezing unavailable (%s); using folded batch norm", exc)
                self.mode = "fused"
                head = FeatureHead(fold_batchnorm(self._head.model)).eval().to(self.device)
                self._runner = head.to(memory_format=torch.channels_last)
        elif self.mode == "compile":
            self._runner = torch.compile(self._head)
        else:
            self._runner = self._head

    def _forward(self, x, precision: str):
        import torch

        if precision == "bf16":
            with torch.autocast(self.device.type, dtype=torch.bfloat16):
                return self._runner(x).float()
        return self._runner(x)

    # ---- use ------------------------------------------------------------------------------
    def __call__(self, batch: np.ndarray) -> np.ndarray:
        import torch

        batch = np.asarray(batch, dtype=np.float32)
        if batch.ndim != 4 or batch.shape[1] != 3:
            raise ValueError(f"expected (N, 3, H, W) input, got {batch.shape}")
        out = []
        with torch.inference_mode():
            for start in range(0, len(batch), self.batch_size):
                x = torch.from_numpy(batch[start:start + self.batch_size]).to(self.device)
                x = x.contiguous(memory_format=torch.channels_last)
                if self._runner is None:
                    self._build(x)
                if self._check_bf16:
                    self._decide_bf16(x)
                out.append(self._forward(x, self.precision).float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, 2048), np.float32)

    def _decide_bf16(self, x) -> None:
        """On the first batch: keep bf16 only if its features stay within cosine 0.999 of fp32."""
        self._check_bf16 = False
        ref = self._forward(x, "fp32").float().cpu().numpy()
        low = self._forward(x, "bf16").float().cpu().numpy()
        cos = float(cosine_rows(ref, low).min())
        self.precision = "bf16" if cos >= BF16_MIN_COSINE else "fp32"
        log.info("bf16 check: min cosine %.5f -> %s", cos, self.precision)

    @property
    def settings(self) -> dict[str, Any]:
        """For provenance."""
        return {"mode": self.mode, "precision": self.precision, "batch_size": self.batch_size,
                "device": str(self.device), "threads": self.threads, "channels_last": self.channels_last}
