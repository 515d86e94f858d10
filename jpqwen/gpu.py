"""What accelerator and training stack this process has.

GPU stages call :func:`require_gpu` first, before importing NeMo (which takes
tens of seconds on a CPU machine), so that on a machine without a GPU they stop
in seconds with a message instead of a stack trace.
"""

from __future__ import annotations

import importlib.util
import os
import shutil

from jpqwen.errors import NeedsGPUError

# Optional packages that change which kernels NeMo can use.
ACCELERATION_PACKAGES = ("transformer_engine", "apex", "flash_attn")


def has_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def cuda_device_count() -> int:
    if os.environ.get("JPQWEN_FORCE_NO_GPU"):  # lets tests see the CPU path on a GPU box
        return 0
    import warnings

    warnings.filterwarnings("ignore", message=".*pynvml package is deprecated.*")
    try:
        import torch
    except ImportError:
        return 0
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def stack_report() -> dict[str, bool | int]:
    report: dict[str, bool | int] = {"cuda_devices": cuda_device_count(), "nemo": has_module("nemo")}
    for name in ACCELERATION_PACKAGES:
        report[name] = has_module(name)
    return report


def require_gpu(stage: str, *, needs_nemo: bool = True, min_devices: int = 1) -> int:
    """Return the CUDA device count, or raise a clear :class:`NeedsGPUError`."""
    n = cuda_device_count()
    if n < min_devices:
        seen = "nvidia-smi is on PATH but torch sees no CUDA device" if shutil.which("nvidia-smi") else "no NVIDIA GPU"
        raise NeedsGPUError(
            f"`make {stage}` needs {min_devices} NVIDIA GPU(s) with CUDA; this machine has {seen}.",
            hint="run it on the GPU box (RUNTIME=docker with the pinned NeMo image); "
            "`make plan` shows the resolved recipe without a GPU",
        )
    if needs_nemo and not has_module("nemo"):
        raise NeedsGPUError(
            f"`make {stage}` needs NeMo 2.x (nemo_toolkit) and it is not installed in this environment.",
            hint="use RUNTIME=docker (the pinned image has it) or `make setup` for the local virtualenv",
        )
    return n
