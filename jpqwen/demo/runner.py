"""Load every exported stage once and answer prompts with each, timed."""

from __future__ import annotations

import gc
import logging
from dataclasses import dataclass, field
from typing import Any

from jpqwen.errors import InputError

log = logging.getLogger("jpqwen.demo")

STAGE_ORDER = ("base", "continued", "lora_merged")
LABELS = {"base": "Qwen2.5-0.5B (base)", "continued": "+ 継続事前学習 (continual)", "lora_merged": "+ LoRA (merged)"}
DEFAULT_PROMPTS = [("日本の首都は", "completion"), ("富士山について説明してください。", "instruction")]


@dataclass
class DemoConfig:
    stages: list[str] = field(default_factory=lambda: list(STAGE_ORDER))  # shown when present in the export record
    prompts: str = "jpqwen/resources/prompts/ja_prompts.json"  # the fixed prompts (JSON); missing = built-in three
    max_prompts: int = 5  # terminal mode: how many fixed prompts to run
    max_new_tokens: int = 96
    repetition_penalty: float = 1.1  # small models loop without it; 1.0 = plain greedy
    device: str = "auto"  # auto | cpu | cuda
    dtype: str = "auto"  # auto = bfloat16 on CUDA, float32 on CPU
    decoding: str = "auto"  # auto = static (compiled, CUDA graphs) on CUDA, plain on CPU | static | plain
    max_cache_tokens: int = 1024  # static KV cache length: prompt + answer must fit
    warmup: bool = True  # compile / warm each model at load so the first answer is timed fairly
    host: str = "127.0.0.1"  # web mode; the compose service passes 0.0.0.0
    port: int = 7860


@dataclass
class StageModel:
    name: str
    label: str
    path: str
    decoder: Any  # jpqwen.hf.generation.Decoder
    load_seconds: float
    warmup_seconds: float
    weights_mb: float


def resolve_decoding(mode: str, device) -> str:
    if mode == "auto":
        return "static" if device.type == "cuda" else "plain"
    return mode


def process_memory_mb(device) -> float:
    """CUDA: memory allocated now (MiB); CPU: the process's peak resident set size (MiB)."""
    if device.type == "cuda":
        import torch

        return torch.cuda.memory_allocated(device) / 2**20
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


class StageModels:
    """Every stage's model, loaded and warmed once; ``answer`` runs one prompt through one stage.

    All model work runs on one dedicated thread: compiled decode steps with CUDA graphs are recorded
    per thread, and the web server calls ``answer`` from whichever worker thread it likes.
    """

    def __init__(self, models: dict[str, str], cfg: DemoConfig):
        from concurrent.futures import ThreadPoolExecutor

        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="jpqwen-demo-model")
        self._thread.submit(self._load, models, cfg).result()

    def _load(self, models: dict[str, str], cfg: DemoConfig) -> None:
        from jpqwen.hf.generation import Decoder, warm_up
        from jpqwen.hf.models import load_model

        unknown = sorted(set(cfg.stages) - set(STAGE_ORDER))
        if unknown:
            raise InputError(f"demo.stages has unknown stage(s) {unknown}; known: {list(STAGE_ORDER)}")
        chosen = [(n, models[n]) for n in STAGE_ORDER if n in cfg.stages and n in models]
        if not chosen:
            raise InputError("the export record lists none of the demo stages", hint="run `make export`")
        self.cfg = cfg
        self.stages: dict[str, StageModel] = {}
        for name, path in chosen:
            lm = load_model(path, name=name, device=cfg.device, dtype=cfg.dtype)
            mode = resolve_decoding(cfg.decoding, lm.device)
            decoder = Decoder(
                lm,
                mode=mode,
                max_new_tokens=cfg.max_new_tokens,
                max_cache_tokens=cfg.max_cache_tokens,
                repetition_penalty=cfg.repetition_penalty,
            )
            warm = warm_up(decoder) if cfg.warmup else 0.0
            self.stages[name] = StageModel(
                name, LABELS[name], str(path), decoder, lm.load_seconds, warm, lm.weights_bytes / 2**20
            )
            log.info("demo: %s loaded in %.2f s (+%.2f s warm-up, %s decoding)", name, lm.load_seconds, warm, mode)
        self.device = next(iter(self.stages.values())).decoder.loaded.device

    def answer(self, name: str, prompt: str) -> dict[str, Any]:
        return self._thread.submit(self._answer, name, prompt).result()

    def _answer(self, name: str, prompt: str) -> dict[str, Any]:
        s = self.stages[name]
        gen = s.decoder.generate(prompt)
        return {
            "stage": name,
            "label": s.label,
            "text": gen.text,
            "new_tokens": gen.new_tokens,
            "load_s": s.load_seconds,
            "ttft_ms": gen.ttft_s * 1000,
            "tokens_per_s": gen.decode_tokens_per_s,
            "weights_mb": s.weights_mb,
            "memory_mb": gen.peak_memory_mb if gen.peak_memory_mb is not None else process_memory_mb(self.device),
            "memory_kind": "CUDA peak" if gen.peak_memory_mb is not None else "peak RSS",
            "decoding": s.decoder.mode,
        }

    def close(self) -> None:
        self.stages.clear()
        self._thread.shutdown(wait=True)
        gc.collect()


def demo_models(work, cfg: DemoConfig) -> dict[str, str]:
    from jpqwen.stage import require_stage

    return require_stage(work, "export").get("outputs", {}).get("models") or {}


def fixed_prompts(cfg: DemoConfig) -> list:
    """[jpqwen.hf.prompts.Prompt] from demo.prompts (the built-in two when the file is missing)."""
    from jpqwen.hf.prompts import Prompt, load_prompts, resolve

    if not resolve(cfg.prompts).is_file():
        log.warning("demo prompts file %s not found: using the built-in prompts", resolve(cfg.prompts))
        return [Prompt(text, cat) for text, cat in DEFAULT_PROMPTS]
    return load_prompts(cfg.prompts)
