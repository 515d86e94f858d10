"""Load a Hugging Face causal LM + tokenizer from a local directory, timed.

Works with transformers 4.51 (the NeMo 2.3 stack) and 5.x (the GPU machine):
the dtype keyword was renamed from ``torch_dtype`` to ``dtype`` in 4.56.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jpqwen.errors import InputError

DTYPES = ("auto", "float32", "bfloat16", "float16")


def pick_device(name: str = "auto"):
    """``auto`` -> cuda when a GPU is visible, else cpu."""
    import torch

    from jpqwen.gpu import cuda_device_count

    if name == "auto":
        return torch.device("cuda" if cuda_device_count() > 0 else "cpu")
    return torch.device(name)


def pick_dtype(name: str, device) -> Any:
    """``auto`` -> bfloat16 on CUDA (how the model was trained), float32 on CPU."""
    import torch

    if name not in DTYPES:
        raise InputError(f"dtype {name!r} is not one of {', '.join(DTYPES)}")
    if name == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return getattr(torch, name)


def dtype_kwarg(dtype) -> dict[str, Any]:
    """``{'dtype': dtype}`` on transformers >= 4.56, ``{'torch_dtype': dtype}`` before."""
    import transformers
    from packaging.version import Version

    key = "dtype" if Version(transformers.__version__) >= Version("4.56") else "torch_dtype"
    return {key: dtype}


def check_hf_dir(path: str | Path, what: str = "model") -> Path:
    """A local HF model directory (config.json + weights + tokenizer), or a clear error."""
    p = Path(path)
    if not p.is_dir():
        raise InputError(f"{what}: {p} is not a directory")
    if not (p / "config.json").is_file():
        raise InputError(f"{what}: {p} has no config.json (not a Hugging Face model directory)")
    if not any(p.glob("*.safetensors")) and not any(p.glob("*.bin")):
        raise InputError(f"{what}: {p} has no *.safetensors or *.bin weights")
    if not (p / "tokenizer.json").is_file() and not (p / "tokenizer_config.json").is_file():
        raise InputError(f"{what}: {p} has no tokenizer files (tokenizer.json / tokenizer_config.json)")
    return p


@dataclass
class LoadedModel:
    name: str
    path: Path
    model: Any
    tokenizer: Any
    device: Any
    dtype: Any
    load_seconds: float  # from_pretrained + move to device, wall clock
    parameters: int
    weights_bytes: int

    def eos_ids(self) -> list[int]:
        eos = self.model.generation_config.eos_token_id
        if eos is None:
            eos = self.tokenizer.eos_token_id
        return [eos] if isinstance(eos, int) else list(eos or [])


def load_model(
    path: str | Path, name: str | None = None, device: str = "auto", dtype: str = "auto", attn: str = "sdpa"
) -> LoadedModel:
    """Load ``path`` for inference (eval mode, no grad needed), timing the load."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    p = check_hf_dir(path)
    dev = pick_device(device)
    dt = pick_dtype(dtype, dev)
    if dev.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(p)
    model = AutoModelForCausalLM.from_pretrained(p, attn_implementation=attn, **dtype_kwarg(dt))
    model.to(dev).eval()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    n_params = sum(t.numel() for t in model.parameters())
    return LoadedModel(
        name=name or p.name,
        path=p,
        model=model,
        tokenizer=tokenizer,
        device=dev,
        dtype=dt,
        load_seconds=seconds,
        parameters=n_params,
        weights_bytes=int(model.get_memory_footprint()),
    )


def dir_signature(path: str | Path) -> list[tuple[str, int, int]]:
    """(relative name, size, mtime ns) of every file under ``path``: a cheap change detector for stamps."""
    root = Path(path)
    return sorted(
        (str(f.relative_to(root)), f.stat().st_size, f.stat().st_mtime_ns) for f in root.rglob("*") if f.is_file()
    )
