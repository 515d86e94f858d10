"""`make import`: Qwen2.5-0.5B from Hugging Face (or a local HF dir) -> NeMo 2 checkpoint in WORK_DIR.

The source is found before NeMo is touched: a local directory, the HF cache, or
(online only) a download by ``huggingface_hub``. Offline without a local copy
stops with :class:`OfflineError` instead of a hub stack trace deep inside NeMo.
NeMo then converts ``hf:///<local dir>``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
from pathlib import Path

from jpqwen.config import section
from jpqwen.errors import ConfigError, InputError, OfflineError
from jpqwen.gpu import has_module
from jpqwen.nemo.settings import ImportSettings
from jpqwen.paths import WorkDir

log = logging.getLogger(__name__)

WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)


def settings(cfg: dict, environ: dict[str, str] | None = None) -> ImportSettings:
    env = os.environ if environ is None else environ
    s = section(cfg, "import", ImportSettings)
    if env.get("MODEL_SOURCE"):
        s.source = env["MODEL_SOURCE"]
    if s.upcast_fp32 not in ("auto", "always", "never"):
        raise ConfigError(f"import.upcast_fp32 must be auto, always or never, got {s.upcast_fp32!r}")
    return s


def parse_source(source: str) -> tuple[str, str]:
    """``('repo', 'Qwen/Qwen2.5-0.5B')`` or ``('dir', '/abs/path')``."""
    if source.startswith("hf:///"):
        return "dir", str(Path(source[len("hf://") :]).resolve())
    if source.startswith("hf://"):
        return "repo", source[len("hf://") :].strip("/")
    if source.startswith(("/", ".", "~")) or Path(source).expanduser().exists():
        return "dir", str(Path(source).expanduser().resolve())
    if source.count("/") == 1:
        return "repo", source
    raise ConfigError(f"import.source / MODEL_SOURCE {source!r}: use hf://org/name, hf:///abs/dir or a local directory")


def check_hf_dir(path: str) -> Path:
    d = Path(path)
    if not (d / "config.json").is_file():
        raise InputError(f"{d}: not a Hugging Face model directory (no config.json)")
    if not any((d / f).is_file() for f in WEIGHT_FILES):
        raise InputError(f"{d}: no weights ({' / '.join(WEIGHT_FILES)})")
    if not any((d / f).is_file() for f in ("tokenizer.json", "vocab.json", "tokenizer.model")):
        raise InputError(f"{d}: no tokenizer files (tokenizer.json / vocab.json)")
    return d


def hub_offline(environ: dict[str, str] | None = None) -> bool:
    env = os.environ if environ is None else environ
    return any(
        env.get(k, "").strip().lower() in ("1", "true", "yes", "on") for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def cached_snapshot(repo_id: str) -> Path | None:
    """The complete local snapshot of ``repo_id`` in the HF cache, or None (no network)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(snapshot_download(repo_id, local_files_only=True))
    except (LocalEntryNotFoundError, FileNotFoundError, OSError):
        return None
    except Exception as exc:  # e.g. a malformed cache entry
        log.debug("HF cache lookup for %s failed: %s", repo_id, exc)
        return None


def predicted_hf_dir(s: ImportSettings) -> str:
    kind, ref = parse_source(s.source)
    if kind == "dir":
        return ref
    snap = cached_snapshot(ref)
    return str(snap) if snap else f"<HF cache snapshot of {ref}: pending make import>"


def resolve_source(s: ImportSettings, environ: dict[str, str] | None = None) -> Path:
    """A local HF directory for ``s.source``; downloads only when the hub is allowed and reachable."""
    kind, ref = parse_source(s.source)
    if kind == "dir":
        if not Path(ref).is_dir():
            raise InputError(f"MODEL_SOURCE / import.source {ref}: no such directory")
        return check_hf_dir(ref)
    snap = cached_snapshot(ref)
    if snap is not None:
        return check_hf_dir(str(snap))
    if hub_offline(environ):
        raise OfflineError(
            f"{ref} is not in the Hugging Face cache and the hub is offline (HF_HUB_OFFLINE=1)",
            hint="download it on a connected machine (huggingface-cli download "
            f"{ref}) into HF_HOME, or set MODEL_SOURCE=/path/to/local/hf/dir",
        )
    from huggingface_hub import snapshot_download

    try:
        return check_hf_dir(snapshot_download(ref, allow_patterns=["*.json", "*.safetensors", "*.txt", "merges.txt"]))
    except InputError:
        raise
    except Exception as exc:
        raise OfflineError(
            f"could not download {ref} from the Hugging Face hub: {type(exc).__name__}: {str(exc)[:300]}",
            hint=f"check the network / HF_TOKEN, or set MODEL_SOURCE=/path/to/local/hf/dir (HF_HOME={os.environ.get('HF_HOME', '~/.cache/huggingface')})",
        ) from None


def needs_fp32_copy(s: ImportSettings, hf_dir: Path, transformer_engine: bool | None = None) -> bool:
    """Without TE, NeMo's local-spec RMSNorm weights are fp32 and the importer refuses bf16/fp16 sources."""
    if s.upcast_fp32 == "never":
        return False
    dtype = json.loads((hf_dir / "config.json").read_text(encoding="utf-8")).get("torch_dtype", "float32")
    if dtype in (None, "float32"):
        return False
    if s.upcast_fp32 == "always":
        return True
    te = has_module("transformer_engine") if transformer_engine is None else transformer_engine
    return not te


def fp32_copy(hf_dir: Path, out_dir: Path) -> Path:
    """Write an fp32 copy of the HF model (weights + tokenizer + generation config) to ``out_dir``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if (out_dir / "config.json").is_file() and any((out_dir / f).is_file() for f in WEIGHT_FILES):
        return out_dir
    tmp = out_dir.with_name(out_dir.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    model = AutoModelForCausalLM.from_pretrained(hf_dir, torch_dtype=torch.float32)
    model.save_pretrained(tmp, safe_serialization=True)
    AutoTokenizer.from_pretrained(hf_dir).save_pretrained(tmp)
    for extra in ("generation_config.json",):
        if (hf_dir / extra).is_file() and not (tmp / extra).is_file():
            shutil.copyfile(hf_dir / extra, tmp / extra)
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)
    return out_dir


def run(args: argparse.Namespace, cfg: dict, work: WorkDir) -> int:
    """Stage body of ``python -m pipeline.import_model``."""
    from jpqwen.gpu import require_gpu

    s = settings(cfg)
    kind, ref = parse_source(s.source)
    from jpqwen.stage import Stage

    out_dir = work.models / s.name
    stage = Stage("import", work, config=s, inputs={"source": s.source}, force=args.force)
    if stage.up_to_date():
        print(f"jpqwen import: up to date -> {out_dir} (--force to redo)")
        return 0
    require_gpu("import")  # the importer saves through megatron-core's CUDA path; stop here in seconds on CPU
    hf_dir = resolve_source(s)
    source_dir = hf_dir
    notes = []
    if needs_fp32_copy(s, hf_dir):
        source_dir = fp32_copy(hf_dir, work.cache / "import-fp32" / s.name)
        notes.append(f"source upcast to fp32 at {source_dir} (no Transformer Engine: fp32 RMSNorm weights)")
    from jpqwen.nemo.environment import apply_runtime_patches

    notes += apply_runtime_patches()
    from jpqwen.nemo.recipes import import_recipe, to_yaml

    recipe = import_recipe(f"hf://{source_dir}", out_dir)
    work.models.mkdir(parents=True, exist_ok=True)
    recipe_yaml = work.models / f"{s.name}.recipe.yaml"
    recipe_yaml.write_text(to_yaml(recipe), encoding="utf-8")
    if out_dir.exists():  # a half-written import from an interrupted run (the stamp says it is not done)
        shutil.rmtree(out_dir)
    import fiddle as fdl

    fdl.build(recipe)()
    stage.finish(
        {"nemo_checkpoint": str(out_dir), "hf_dir": str(hf_dir), "recipe_yaml": str(recipe_yaml)},
        {"source": s.source, "source_kind": kind, "source_ref": ref, "notes": notes},
    )
    print(f"jpqwen import: {s.source} -> {out_dir}")
    return 0
