"""Typed config sections for ``import:``, ``pretrain:`` and ``lora:`` (no NeMo import here).

Each dataclass mirrors one section of ``configs/default.yaml``; unknown keys are
rejected by :func:`jpqwen.config.section` with the file name. Defaults here are
the defaults of the real run on one 48 GB GPU; ``configs/tiny.yaml`` shrinks them.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field

from jpqwen.errors import ConfigError

DEFAULT_MODEL_SOURCE = "hf://Qwen/Qwen2.5-0.5B"
# The image the Slurm executor runs in (the same pinned image as `make image`'s base).
PINNED_IMAGE = "nvcr.io/nvidia/nemo:25.04"


@dataclass
class ImportSettings:
    source: str = DEFAULT_MODEL_SOURCE  # hf://org/name, hf:///abs/dir or a local HF dir; env MODEL_SOURCE wins
    name: str = "qwen2.5-0.5b"  # <WORK_DIR>/models/<name> holds the NeMo checkpoint
    # Without Transformer Engine the importer keeps RMSNorm weights in fp32 and refuses a bf16 source
    # ("dtype mismatch"); "auto" upcasts the source to fp32 first on such machines only.
    upcast_fp32: str = "auto"  # auto | always | never


@dataclass
class SlurmSettings:
    account: str | None = None
    partition: str | None = None
    nodes: int = 1
    gpus_per_node: int = 8
    time: str = "04:00:00"  # wall clock limit, HH:MM:SS
    container_image: str = PINNED_IMAGE
    container_mounts: list[str] = field(default_factory=list)  # extra host:container mounts (WORK_DIR is added)
    job_dir: str | None = None  # where NeMo-Run writes the sbatch script (default <WORK_DIR>/runs/slurm)

    def __post_init__(self):
        # YAML 1.1 reads an unquoted 12:00:00 (e.g. from --set) as the sexagesimal int 43200
        if isinstance(self.time, int):
            h, rest = divmod(self.time, 3600)
            self.time = f"{h:02d}:{rest // 60:02d}:{rest % 60:02d}"


@dataclass
class PretrainSettings:
    # steps: max_steps wins over tokens; env MAX_STEPS / TOKENS win over the preset, --set wins over both
    max_steps: int | None = None
    tokens: int | str | None = "500M"  # token budget: steps = tokens / (global_batch_size * seq_length)
    seq_length: int = 2048  # tokens per sample
    micro_batch_size: int = 4  # samples per GPU per forward pass; fits a 48 GB GPU at seq 2048
    global_batch_size: int = 64  # samples per optimizer step (64 x 2048 = 131k tokens)
    # LR: re-warm then cosine re-decay (Ibrahim et al. 2024, arXiv 2403.08763): warmup ~1% of steps,
    # floor = 10% of the peak; the peak is 1/3 of the recipe's from-scratch 3e-4 to limit forgetting.
    max_lr: float = 1.0e-4
    min_lr: float = 1.0e-5
    warmup_steps: int | None = None  # None = warmup_fraction x steps
    warmup_fraction: float = 0.01
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    # English replay (Ibrahim et al. 2024: a few % replay of the original distribution limits forgetting)
    replay_weight: float = 0.05  # fraction of training samples drawn from data's en_replay_prefix; 0 = off
    val_check_interval: int = 250  # steps between validations
    limit_val_batches: int = 32  # micro batches per validation
    ckpt_every_n_steps: int = 250  # steps between checkpoints (and one at the end)
    keep_last: int = 3  # checkpoints kept (newest by step)
    log_every_n_steps: int = 10
    tie_embeddings: bool = True  # as HF Qwen2.5-0.5B (494 M params); False = NeMo's untied 630 M default
    gpus: int | str | None = None  # GPUs per node; env GPUS; None/"all" = every visible CUDA device
    num_workers: int = 2  # data loader workers per GPU
    executor: str = "local"  # local (torchrun on this box) | slurm
    slurm: SlurmSettings = field(default_factory=SlurmSettings)

    def __post_init__(self):
        if isinstance(self.slurm, dict):
            try:
                self.slurm = SlurmSettings(**self.slurm)
            except TypeError as exc:
                raise ConfigError(f"pretrain.slurm: {exc}") from None
        if self.executor not in ("local", "slurm"):
            raise ConfigError(f"pretrain.executor must be 'local' or 'slurm', got {self.executor!r}")
        if not 0.0 <= self.replay_weight < 1.0:
            raise ConfigError(f"pretrain.replay_weight must be in [0, 1), got {self.replay_weight}")
        if self.min_lr > self.max_lr:
            raise ConfigError(f"pretrain.min_lr ({self.min_lr}) is above pretrain.max_lr ({self.max_lr})")


@dataclass
class LoraSettings:
    # data: a jsonl of {"input", "output"} pairs, or an HF dataset id (converted into WORK_DIR)
    dataset: str = "jpqwen/resources/sample/lora/ja_instructions.jsonl"  # relative to the repo root
    validation: str | None = "jpqwen/resources/sample/lora/ja_instructions_validation.jsonl"
    hf_split: str = "train"  # split of an HF dataset id
    input_fields: list[str] = field(default_factory=lambda: ["instruction", "input"])  # HF id: joined by newline
    output_field: str = "output"  # HF id: the answer column
    validation_fraction: float = 0.05  # held out when no validation file is given
    # how a pair becomes one training text (loss on the output only); demo/eval prompts must match it
    prompt_template: str = "{input}\n{output}"
    # LoRA
    dim: int = 32  # rank
    alpha: int = 32
    dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: ["linear_qkv", "linear_proj", "linear_fc1", "linear_fc2"])
    # training
    seq_length: int = 2048
    micro_batch_size: int = 4
    global_batch_size: int = 32
    max_steps: int | None = None  # None = epochs x examples / global_batch_size
    epochs: float = 3.0
    lr: float = 1.0e-4  # NeMo's LoRA default for this recipe
    min_lr: float = 0.0
    warmup_steps: int = 20
    val_check_interval: int = 50
    limit_val_batches: int = 8
    ckpt_every_n_steps: int = 50
    keep_last: int = 2
    log_every_n_steps: int = 5
    gpus: int | str | None = None
    num_workers: int = 2

    def __post_init__(self):
        if self.dim <= 0 or self.alpha <= 0:
            raise ConfigError(f"lora.dim and lora.alpha must be positive, got {self.dim} / {self.alpha}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"lora.dropout must be in [0, 1), got {self.dropout}")
        if not self.target_modules:
            raise ConfigError("lora.target_modules is empty: LoRA would train nothing")
        if "{input}" not in self.prompt_template or not self.prompt_template.rstrip().endswith("{output}"):
            raise ConfigError(
                f"lora.prompt_template must contain {{input}} and end with {{output}}: {self.prompt_template!r}"
            )


_SUFFIX = {"": 1, "k": 10**3, "m": 10**6, "b": 10**9, "g": 10**9, "t": 10**12}


def parse_count(value: int | float | str, what: str) -> int:
    """``"500M"`` -> 500_000_000; ``2e9`` -> 2_000_000_000; names ``what`` in the error."""
    if isinstance(value, bool):
        raise ConfigError(f"{what}: expected a count, got {value!r}")
    if isinstance(value, (int, float)):
        n = int(value)
    else:
        m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:e[0-9]+)?)\s*([kKmMbBgGtT]?)\s*", str(value))
        if not m:
            raise ConfigError(f"{what}: {value!r} is not a count (e.g. 20, 500M, 2B)")
        n = int(float(m.group(1)) * _SUFFIX[m.group(2).lower()])
    if n <= 0:
        raise ConfigError(f"{what}: must be positive, got {value!r}")
    return n


@dataclass(frozen=True)
class StepBudget:
    steps: int
    tokens: int  # tokens the steps will consume
    source: str  # where the number came from (for the plan)


def resolve_steps(
    s: PretrainSettings, overrides: list[str] | None = None, environ: dict[str, str] | None = None
) -> StepBudget:
    """Training steps: ``--set`` > env ``MAX_STEPS``/``TOKENS`` > preset; max_steps beats tokens at each level."""
    env = os.environ if environ is None else environ
    tokens_per_step = s.global_batch_size * s.seq_length
    set_keys = {o.split("=", 1)[0].strip() for o in overrides or []}

    def from_tokens(tokens: int, source: str) -> StepBudget:
        steps = max(1, math.ceil(tokens / tokens_per_step))
        return StepBudget(steps, steps * tokens_per_step, source)

    if "pretrain.max_steps" in set_keys and s.max_steps is not None:
        return StepBudget(parse_count(s.max_steps, "pretrain.max_steps"), 0, "--set pretrain.max_steps")
    if "pretrain.tokens" in set_keys and s.tokens is not None:
        return from_tokens(parse_count(s.tokens, "pretrain.tokens"), f"--set pretrain.tokens={s.tokens}")
    if env.get("MAX_STEPS"):
        return StepBudget(parse_count(env["MAX_STEPS"], "env MAX_STEPS"), 0, "env MAX_STEPS")
    if env.get("TOKENS"):
        return from_tokens(parse_count(env["TOKENS"], "env TOKENS"), f"env TOKENS={env['TOKENS']}")
    if s.max_steps is not None:
        return StepBudget(parse_count(s.max_steps, "pretrain.max_steps"), 0, "pretrain.max_steps")
    if s.tokens is not None:
        return from_tokens(parse_count(s.tokens, "pretrain.tokens"), f"pretrain.tokens={s.tokens}")
    raise ConfigError("pretrain: set max_steps or tokens (or env MAX_STEPS / TOKENS)")


def with_tokens(b: StepBudget, tokens_per_step: int) -> StepBudget:
    return StepBudget(b.steps, b.steps * tokens_per_step, b.source)


def resolve_gpus(value: int | str | None, environ: dict[str, str] | None = None, visible: int | None = None) -> int:
    """GPUs per node: the setting, else env ``GPUS``; ``all``/None = every visible CUDA device (at least 1)."""
    env = os.environ if environ is None else environ
    raw = value if value not in (None, "") else env.get("GPUS")
    if raw in (None, "", "all"):
        if visible is None:
            from jpqwen.gpu import cuda_device_count

            visible = cuda_device_count()
        return max(1, visible)
    try:
        n = int(raw)
    except (TypeError, ValueError):
        raise ConfigError(f"GPUS / gpus must be a number or 'all', got {raw!r}") from None
    if n < 1:
        raise ConfigError(f"GPUS / gpus must be at least 1, got {n}")
    return n
