"""Speed levers that keep the method's mathematics: compiling a method's loss functions with `torch.compile`
(on a GPU with mode "reduce-overhead" that also captures them as CUDA graphs), and the precision of the matrix
products (fp32; tf32 on Ampere-or-later GPUs; bf16 autocast). All off by default until measured
(docs/benchmarks.md); `--compile` and `--precision` select them.

A compiled function is compiled on its first call; when that fails (no C++ compiler for the CPU backend, an
operation the compiler cannot take) the method falls back to the eager function with one warning, so a run never
fails because of a lever.
"""

from __future__ import annotations

import contextlib
import warnings
from typing import Callable

import torch

# "aot-eager" captures the graphs (forward and backward) without generating code: it shows graph breaks and
# checks the capture without a C++ compiler, at no speed-up
COMPILE_MODES = ("none", "default", "reduce-overhead", "max-autotune", "aot-eager")
PRECISIONS = ("fp32", "tf32", "bf16", "auto")


def native_bf16(device: torch.device) -> bool:
    """Whether `device` multiplies bf16 matrices in hardware: a GPU with bf16 (Ampere or later), or a CPU with
    AVX-512 BF16 or AMX. Elsewhere bf16 is emulated and slower than fp32 (docs/methods.md, 'CPU speed')."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)
    if device.type == "cpu":
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    return False


def resolve_precision(precision: str, device: torch.device) -> str:
    """"auto" → bf16 where the device has native bf16 products, else fp32; any other value unchanged."""
    if precision != "auto":
        return precision
    return "bf16" if native_bf16(device) else "fp32"


def set_matmul_precision(precision: str) -> None:
    """tf32: float32 matrix products and convolutions may use TensorFloat-32 (Ampere or later GPUs)."""
    tf32 = precision == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    torch.set_float32_matmul_precision("high" if tf32 else "highest")


def autocast(precision: str, device: torch.device):
    """The context a forward pass runs in: bf16 autocast, or nothing."""
    if precision == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


class Compiled:
    """`fn`, compiled with `torch.compile(mode=...)` on first use, or eager when mode is "none" or compiling failed.
    `graph_breaks` counts the graph breaks dynamo reported while compiling (0: one graph per call)."""

    def __init__(self, fn: Callable, mode: str = "none", name: str = ""):
        self.fn, self.mode, self.name = fn, mode, name or getattr(fn, "__name__", "function")
        self.compiled = None
        self.failed: str | None = None
        self.graph_breaks = 0
        if mode != "none":
            if mode not in COMPILE_MODES:
                raise ValueError(f"unknown compile mode {mode!r} (known: {', '.join(COMPILE_MODES)})")
            import torch._dynamo

            if hasattr(torch._dynamo.config, "trace_autograd_ops"):  # torch ≥ 2.14: the gradient penalty's
                torch._dynamo.config.trace_autograd_ops = True       # autograd.grad(create_graph=True) in-graph
            if mode == "aot-eager":
                self.compiled = torch.compile(fn, backend="aot_eager", dynamic=False)
            else:
                self.compiled = torch.compile(fn, mode=None if mode == "default" else mode, dynamic=False)

    def __call__(self, *args, **kwargs):
        if self.compiled is None:
            return self.fn(*args, **kwargs)
        from torch._dynamo.utils import counters

        before = sum(counters["graph_break"].values())
        try:
            out = self.compiled(*args, **kwargs)
        except Exception as e:  # noqa: BLE001 - any compiler failure falls back to eager, once
            self.failed = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
            warnings.warn(f"torch.compile of {self.name} failed ({self.failed}); training on uncompiled",
                          RuntimeWarning, stacklevel=2)
            self.compiled = None
            return self.fn(*args, **kwargs)
        self.graph_breaks += sum(counters["graph_break"].values()) - before
        return out
