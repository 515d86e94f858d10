"""`make pretrain` and `make lora`: resolve inputs, build the recipe, run it with NeMo-Run, record the outputs.

``build_pretrain`` / ``build_lora`` / ``build_import`` are shared with ``make plan``
(``for_plan=True`` accepts upstream stages that have not run yet and says so).
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jpqwen.config import section
from jpqwen.errors import ConfigError, JpqwenError, NeedsGPUError
from jpqwen.gpu import has_module, require_gpu
from jpqwen.monitoring import wandb_settings
from jpqwen.nemo import inputs as upstream
from jpqwen.nemo import lora_data
from jpqwen.nemo.environment import Change, Stack, all_changes
from jpqwen.nemo.settings import LoraSettings, PretrainSettings, StepBudget, resolve_gpus, resolve_steps
from jpqwen.paths import WorkDir
from jpqwen.stage import Stage

log = logging.getLogger(__name__)


@dataclass
class Built:
    stage: str
    recipe: Any
    executor: Any | None
    run_dir: Path  # NeMoLogger's log_dir; the experiment lives in run_dir/<name>
    name: str
    summary: dict[str, str]  # human summary lines for the plan
    stage_config: dict[str, Any]  # fingerprinted with the inputs
    stage_inputs: dict[str, Any]
    changes: list[Change] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)  # upstream stages that have not run

    @property
    def exp_dir(self) -> Path:
        return self.run_dir / self.name


def _run_name(cfg: dict) -> tuple[str, int]:
    run = cfg.get("run") or {}
    return str(run.get("name") or "jpqwen"), int(run.get("seed") or 1234)


def _short(fp: str) -> str:
    return fp[:8]


# ---------------------------------------------------------------- import (plan only; the stage is import_ckpt.run)


def build_import(cfg: dict, work: WorkDir) -> Built:
    from jpqwen.nemo.import_ckpt import parse_source, predicted_hf_dir, settings
    from jpqwen.nemo.recipes import import_recipe

    s = settings(cfg)
    out = work.models / s.name
    kind, ref = parse_source(s.source)
    recipe = import_recipe(f"hf:///{ref.lstrip('/')}" if kind == "dir" else f"hf://{ref}", out)
    done = (work.stamps / "import.json").is_file()
    summary = {
        "source": s.source + ("" if kind == "dir" else f" (local copy: {predicted_hf_dir(s)})"),
        "output": f"{out}" + ("" if done else "  [pending: make import]"),
        "embeddings": "importer writes untied weights (output_layer = a copy of lm_head = embeddings)",
    }
    return Built("import", recipe, None, work.models, s.name, summary, {"import": s}, {"source": s.source})


# ---------------------------------------------------------------- continual pretraining


def pretrain_settings(cfg: dict) -> PretrainSettings:
    return section(cfg, "pretrain", PretrainSettings)


def build_pretrain(cfg: dict, work: WorkDir, *, for_plan: bool = False, stack: Stack | None = None) -> Built:
    from jpqwen.nemo.import_ckpt import settings as import_settings
    from jpqwen.nemo.recipes import PretrainInputsResolved, local_executor, pretrain_recipe, slurm_executor

    s = pretrain_settings(cfg)
    name, seed = _run_name(cfg)
    data = upstream.data_inputs(work, allow_pending=for_plan)
    base = upstream.import_inputs(work, import_settings(cfg), allow_pending=for_plan)
    if not data.pending:
        upstream.check_megatron_prefix(data.train_prefix, "data train_prefix")
        upstream.check_megatron_prefix(data.validation_prefix, "data validation_prefix")
        if data.en_replay_prefix and s.replay_weight > 0:
            upstream.check_megatron_prefix(data.en_replay_prefix, "data en_replay_prefix")
    if s.executor == "slurm":
        gpus, nodes = s.slurm.gpus_per_node, s.slurm.nodes
    else:
        gpus, nodes = resolve_gpus(s.gpus), 1
    budget = resolve_steps(s, cfg.get("_overrides"))
    budget = StepBudget(budget.steps, budget.steps * s.global_batch_size * s.seq_length, budget.source)
    changes = all_changes(stack)
    stage_config = {"pretrain": s, "steps": budget.steps, "gpus": gpus, "nodes": nodes, "seed": seed, "name": name}
    stage_inputs = {"data": data.__dict__, "import": base.__dict__}
    from jpqwen.config import fingerprint

    run_dir = work.runs / "pretrain" / f"{name}-{_short(fingerprint('pretrain', stage_config, stage_inputs))}"
    resolved = PretrainInputsResolved(
        data.train_prefix, data.validation_prefix, data.en_replay_prefix, base.nemo_checkpoint, base.hf_dir
    )
    wb = _wandb(work, "pretrain")
    recipe = pretrain_recipe(
        s,
        name=name,
        seed=seed,
        inputs=resolved,
        budget=budget,
        gpus_per_node=gpus,
        num_nodes=nodes,
        run_dir=run_dir,
        index_dir=work.cache / "megatron-index",
        changes=changes,
        wandb=wb,
    )
    executor = slurm_executor(s.slurm, work) if s.executor == "slurm" else local_executor(gpus)
    warmup = recipe.optim.lr_scheduler.warmup_steps
    blend = recipe.data.paths["train"]
    replay = (
        f"English replay {blend[2]:.0%} ({blend[3]})"
        if len(blend) == 4
        else ("no English replay (data stage made none)" if s.replay_weight > 0 else "no English replay")
    )
    pending = [n for n, p in (("data", data.pending), ("import", base.pending)) if p]
    accum = s.global_batch_size // (s.micro_batch_size * gpus * nodes)
    summary = {
        "model": f"Qwen2.5-0.5B ({'tied' if s.tie_embeddings else 'untied'} embeddings), seq {s.seq_length}",
        "restore": f"{base.nemo_checkpoint} (weights only, fresh optimizer)" + _pend(base.pending, "import"),
        "tokenizer": f"HF AutoTokenizer {base.hf_dir}",
        "data": f"train {data.train_prefix} / validation {data.validation_prefix}; {replay}"
        + _pend(data.pending, "data"),
        "steps": f"{budget.steps} ({budget.source}) = {budget.tokens / 1e6:,.1f} M tokens",
        "batch": f"global {s.global_batch_size} x {s.seq_length} tokens = micro {s.micro_batch_size} x {gpus * nodes} "
        f"GPU(s) x {accum} accumulation",
        "lr": f"warmup {warmup} steps to {s.max_lr:g}, cosine to {s.min_lr:g} at step {budget.steps}; wd {s.weight_decay}",
        "val/ckpt": f"validate every {recipe.trainer.val_check_interval} steps ({s.limit_val_batches} batches), "
        f"checkpoint every {recipe.log.ckpt.every_n_train_steps} steps + at the end, keep last {s.keep_last}",
        "loggers": "TensorBoard" + (f" + {wb.describe()}" if wb.enabled else " (W&B disabled)"),
        "executor": _describe_executor(s, gpus),
        "run dir": str(run_dir / name),
    }
    return Built("pretrain", recipe, executor, run_dir, name, summary, stage_config, stage_inputs, changes, pending)


def _wandb(work: WorkDir, stage: str):
    wb = wandb_settings(work, stage)
    if wb.enabled and not has_module("wandb"):  # else the training processes die importing it
        raise ConfigError(
            f"W&B is {wb.mode} (WANDB_MODE / WANDB_API_KEY) but the wandb package is not installed here",
            hint="pip install wandb, or set WANDB_MODE=disabled to log to TensorBoard only",
        )
    return wb


def _pend(flag: bool, stage: str) -> str:
    return f"  [pending: make {stage}]" if flag else ""


def _describe_executor(s: PretrainSettings, gpus: int) -> str:
    if s.executor == "slurm":
        sl = s.slurm
        return (
            f"Slurm: {sl.nodes} node(s) x {sl.gpus_per_node} GPU(s), account {sl.account}, partition "
            f"{sl.partition}, time {sl.time}, image {sl.container_image}"
        )
    return f"NeMo-Run LocalExecutor, torchrun x {gpus} process(es)"


# ---------------------------------------------------------------- LoRA


def lora_settings(cfg: dict) -> LoraSettings:
    return section(cfg, "lora", LoraSettings)


def lora_steps(s: LoraSettings, n_train: int) -> int:
    if s.max_steps is not None:
        return int(s.max_steps)
    if n_train <= 0:
        raise JpqwenError("lora: no training examples to size the run; set lora.max_steps")
    return max(1, math.ceil(s.epochs * n_train / s.global_batch_size))


def build_lora(cfg: dict, work: WorkDir, *, for_plan: bool = False, stack: Stack | None = None) -> Built:
    from jpqwen.nemo.import_ckpt import settings as import_settings
    from jpqwen.nemo.recipes import local_executor, lora_recipe

    s = lora_settings(cfg)
    ps = pretrain_settings(cfg)
    name, seed = _run_name(cfg)
    base = upstream.pretrain_inputs(work, allow_pending=for_plan)
    imported = upstream.import_inputs(work, import_settings(cfg), allow_pending=for_plan)
    data = upstream.data_inputs(work, allow_pending=True)
    try:
        ds = lora_data.prepare(s, work, data, seed)
    except JpqwenError:
        if not for_plan or "/" not in s.dataset or lora_data._local_path(s.dataset):
            raise
        ds = lora_data.pending(s, work)  # an HF dataset id not reachable from here: the stage converts it
    steps = lora_steps(s, ds.train_examples)
    gpus = resolve_gpus(s.gpus)
    changes = all_changes(stack)
    stage_config = {"lora": s, "steps": steps, "gpus": gpus, "seed": seed, "name": name, "tie": ps.tie_embeddings}
    stage_inputs = {"pretrain": base.__dict__, "dataset": str(ds.root), "tokenizer": imported.hf_dir}
    from jpqwen.config import fingerprint

    lora_name = f"{name}-lora"
    run_dir = work.runs / "lora" / f"{lora_name}-{_short(fingerprint('lora', stage_config, stage_inputs))}"
    wb = _wandb(work, "lora")
    recipe = lora_recipe(
        s,
        name=lora_name,
        seed=seed,
        base_checkpoint=base.checkpoint,
        hf_dir=imported.hf_dir,
        dataset_root=ds.root,
        steps=steps,
        gpus_per_node=gpus,
        run_dir=run_dir,
        changes=changes,
        wandb=wb,
        tie_embeddings=ps.tie_embeddings,
    )
    pending = [n for n, p in (("pretrain", base.pending), ("import", imported.pending)) if p]
    summary = {
        "model": f"continual-pretraining checkpoint + LoRA dim {s.dim} alpha {s.alpha} dropout {s.dropout} on "
        f"{', '.join(s.target_modules)}",
        "restore": base.checkpoint + _pend(base.pending, "pretrain"),
        "data": f"{ds.source}: {ds.train_examples} train / {ds.validation_examples} validation pairs -> {ds.root}"
        + (" [pending: converted by make lora]" if ds.pending else ""),
        "steps": f"{steps} ({'lora.max_steps' if s.max_steps is not None else f'{s.epochs:g} epochs'}), "
        f"batch global {s.global_batch_size} / micro {s.micro_batch_size}, seq {s.seq_length}",
        "lr": f"{s.lr:g} cosine to {s.min_lr:g}, warmup {recipe.optim.lr_scheduler.warmup_steps}",
        "loggers": "TensorBoard" + (f" + {wb.describe()}" if wb.enabled else " (W&B disabled)"),
        "executor": f"NeMo-Run LocalExecutor, torchrun x {gpus} process(es)",
        "run dir": str(run_dir / lora_name),
    }
    return Built(
        "lora", recipe, local_executor(gpus), run_dir, lora_name, summary, stage_config, stage_inputs, changes, pending
    )


# ---------------------------------------------------------------- running


def _check_can_launch(stage: str, executor: str = "local") -> None:
    if executor == "slurm":  # submitted from a login node: no GPU needed here, NeMo-Run is
        if not has_module("nemo_run") or not has_module("nemo"):
            raise NeedsGPUError(f"`make {stage}` with the Slurm executor needs nemo_toolkit and nemo_run here")
        return
    require_gpu(stage)


def _launch(built: Built, work: WorkDir, force: bool, metrics: dict[str, Any]) -> int:
    from jpqwen.nemo.recipes import to_yaml

    stage = Stage(built.stage, work, config=built.stage_config, inputs=built.stage_inputs, force=force)
    if stage.up_to_date():
        print(f"jpqwen {built.stage}: up to date -> {stage.previous()['outputs']['checkpoint']} (--force to redo)")
        return 0
    if force and built.run_dir.exists():  # keep the old run, out of the way of AutoResume
        aside = built.run_dir.with_name(built.run_dir.name + time.strftime(".replaced-%Y%m%dT%H%M%S"))
        built.run_dir.rename(aside)
        print(f"jpqwen {built.stage}: --force: previous run moved to {aside}")
    built.exp_dir.mkdir(parents=True, exist_ok=True)
    recipe_yaml = built.run_dir / "recipe.yaml"
    recipe_yaml.write_text(to_yaml(built.recipe), encoding="utf-8")
    for ch in built.changes:
        print(f"jpqwen {built.stage}: environment: {ch.describe()}")
    os.environ.setdefault("NEMORUN_HOME", str(work.runs / "nemo_run"))
    import nemo_run as run

    run.run(built.recipe, executor=built.executor, name=f"{built.stage}-{built.name}")
    try:
        final = upstream.find_final_checkpoint(built.exp_dir / "checkpoints", require_context=built.stage != "lora")
    except JpqwenError as exc:
        raise JpqwenError(
            f"{built.stage}: training wrote no checkpoint under {built.exp_dir / 'checkpoints'}",
            hint=f"see the NeMo-Run log under {os.environ['NEMORUN_HOME']}/experiments and {built.exp_dir}",
        ) from exc
    steps = int(built.stage_config["steps"])
    final_step = upstream.checkpoint_step(final) or 0
    if final_step < steps - 1:  # an older checkpoint of an interrupted attempt is not the final one
        raise JpqwenError(
            f"{built.stage}: the newest checkpoint {final.name} is at step {final_step} of {steps}: training stopped early",
            hint=f"see the NeMo-Run log under {os.environ['NEMORUN_HOME']}/experiments; run again to resume from it",
        )
    stage.finish(
        {"checkpoint": str(final), "log_dir": str(built.exp_dir), "recipe_yaml": str(recipe_yaml)},
        {
            **metrics,
            "final_step": final_step,
            "environment_changes": [c.describe() for c in built.changes],
        },
    )
    print(f"jpqwen {built.stage}: done -> {final}")
    return 0


def run_pretrain(args: argparse.Namespace, cfg: dict, work: WorkDir) -> int:
    _check_can_launch("pretrain", pretrain_settings(cfg).executor)
    built = build_pretrain(cfg, work)
    return _launch(built, work, args.force, {"steps": built.stage_config["steps"]})


def run_lora(args: argparse.Namespace, cfg: dict, work: WorkDir) -> int:
    _check_can_launch("lora")
    built = build_lora(cfg, work)
    return _launch(built, work, args.force, {"steps": built.stage_config["steps"]})
