"""NeMo-Run recipes for import, continual pretraining and LoRA (plain functions, NeMo imported lazily).

Each recipe starts from NeMo's own ``llm.qwen25_500m`` recipe and changes it in
short commented groups. The result is a ``run.Partial`` that ``make plan``
serializes to YAML and ``make pretrain`` / ``make lora`` hand to NeMo-Run.

Two facts about NeMo 2.3.1's recipes that this module exists to fix:

- ``pretrain_recipe`` restores **no** weights (``resume=default_resume()``): a
  "continual" run built from it alone starts from random init. We set
  ``resume.restore_config`` to the imported checkpoint.
- Its ``CosineAnnealingScheduler`` keeps ``max_steps=10`` (the class default):
  after warmup the LR would sit at ``min_lr``. We set it to the run's steps.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jpqwen.config import REPO_ROOT
from jpqwen.errors import ConfigError
from jpqwen.monitoring import WandbSettings
from jpqwen.nemo.environment import Change
from jpqwen.nemo.settings import LoraSettings, PretrainSettings, SlurmSettings, StepBudget
from jpqwen.paths import WorkDir

CKPT_FILENAME = "{model_name}--{val_loss:.2f}-{step}-{consumed_samples}"  # NeMo's default, step parsed back


def check_batch(global_batch_size: int, micro_batch_size: int, data_parallel: int, section: str) -> int:
    """Gradient-accumulation steps, or a ConfigError when the global batch does not split evenly."""
    per_step = micro_batch_size * data_parallel
    if micro_batch_size < 1 or global_batch_size < 1:
        raise ConfigError(f"{section}: micro_batch_size and global_batch_size must be >= 1")
    if global_batch_size % per_step:
        lower = global_batch_size - global_batch_size % per_step
        raise ConfigError(
            f"{section}: global_batch_size {global_batch_size} is not divisible by micro_batch_size "
            f"{micro_batch_size} x data-parallel size {data_parallel} = {per_step}",
            hint=f"use --set {section}.global_batch_size={lower or per_step} or {lower + per_step}, "
            f"or change micro_batch_size / GPUS",
        )
    return global_batch_size // per_step


# ---------------------------------------------------------------- shared parts


def model_config(seq_length: int, tie_embeddings: bool) -> Any:
    """``run.Config[Qwen2Model]`` of Qwen2.5-0.5B as NeMo defines it, with our two changes."""
    from nemo.collections.llm.recipes import qwen25_500m

    model = qwen25_500m.model()  # Qwen2Model(Qwen25Config500M): 24 layers, hidden 896, 14 heads, 2 KV groups
    model.config.seq_length = seq_length  # the config says 32768; the rotary tables follow the trained length
    # HF Qwen2.5-0.5B ties the LM head to the input embedding; NeMo's config does not (630 M vs 494 M params).
    model.config.share_embeddings_and_output_weights = tie_embeddings
    return model


def hf_tokenizer(hf_dir: str) -> Any:
    """NeMo's AutoTokenizer on the imported model's HF files (the recipe default would fetch GPT-2's vocab)."""
    import nemo_run as run
    from nemo.collections.common.tokenizers.huggingface.auto_tokenizer import AutoTokenizer

    return run.Config(AutoTokenizer, pretrained_model_name=str(hf_dir))


def apply_changes(recipe: Any, changes: list[Change]) -> None:
    """Set each environment change on the recipe (``a.b.c`` paths; ``trainer.callbacks[+]`` appends)."""
    import nemo_run as run

    for ch in changes:
        if ch.target == "trainer.callbacks[+]":
            module, _, cls = str(ch.value).rpartition(".")
            target = getattr(__import__(module, fromlist=[cls]), cls)
            recipe.trainer.callbacks = [*(recipe.trainer.callbacks or []), run.Config(target)]
            continue
        *parents, leaf = ch.target.split(".")
        node = recipe
        for p in parents:
            node = getattr(node, p)
        setattr(node, leaf, ch.value)


def cosine_schedule(recipe: Any, steps: int, warmup_steps: int, max_lr: float, min_lr: float) -> None:
    recipe.optim.config.lr = max_lr  # peak LR after warmup
    sched = recipe.optim.lr_scheduler
    sched.warmup_steps = warmup_steps
    sched.constant_steps = 0
    sched.min_lr = min_lr  # floor reached at max_steps
    sched.max_steps = steps  # NeMo leaves the class default (10) here


def nemo_logger(
    *,
    name: str,
    run_dir: Path,
    keep_last: int,
    every_n_steps: int,
    wandb: WandbSettings,
    wandb_config: dict[str, Any],
    stage: str,
) -> Any:
    """TensorBoard always; W&B when enabled (online with a key, offline otherwise); keep the newest k checkpoints."""
    import nemo_run as run
    from lightning.pytorch.loggers import WandbLogger
    from nemo import lightning as nl
    from nemo.collections.llm.recipes.log.default import tensorboard_logger

    ckpt = run.Config(
        nl.ModelCheckpoint,
        save_last=True,  # also at the end of training
        save_top_k=keep_last,
        monitor="step",  # "best" = newest: keep-last-k
        mode="max",
        every_n_train_steps=every_n_steps,
        filename=CKPT_FILENAME,
    )
    wandb_logger = None
    if wandb.enabled:
        wandb_logger = run.Config(
            WandbLogger,
            project=wandb.project,
            name=name,
            save_dir=str(wandb.dir),  # absolute, so NeMoLogger keeps it under <WORK_DIR>/wandb
            offline=wandb.mode == "offline",
            tags=list(wandb.tags),
            job_type=stage,
            config=wandb_config,
        )
        if wandb.entity:
            wandb_logger.entity = wandb.entity
    return run.Config(
        nl.NeMoLogger,
        name=name,
        log_dir=str(run_dir),
        use_datetime_version=False,  # a stable directory: an interrupted run resumes from its checkpoints
        ckpt=ckpt,
        tensorboard=tensorboard_logger(name=name),
        wandb=wandb_logger,
    )


def restore_from(path: str, resume_if_exists: bool = True) -> Any:
    """AutoResume: weights from ``path`` (no optimizer state); an interrupted run resumes its own checkpoints."""
    import nemo_run as run
    from nemo import lightning as nl

    return run.Config(
        nl.AutoResume,
        restore_config=run.Config(nl.RestoreConfig, path=str(path), load_model_state=True, load_optim_state=False),
        resume_if_exists=resume_if_exists,
        resume_ignore_no_checkpoint=True,
    )


# ---------------------------------------------------------------- import


def import_recipe(source_uri: str, output_path: Path) -> Any:
    """``llm.import_ckpt`` as a Partial (the plan shows it; the stage builds and calls it)."""
    import nemo_run as run
    from nemo.collections import llm

    # The model only selects NeMo's HF importer (HFQwen2Importer); the importer reads the architecture from
    # the source's config.json and always writes an untied checkpoint (output_layer = lm_head = embeddings).
    return run.Partial(
        llm.import_ckpt,
        model=llm.qwen25_500m.model(),
        source=source_uri,
        output_path=str(output_path),
        overwrite=False,
    )


# ---------------------------------------------------------------- continual pretraining


@dataclass(frozen=True)
class PretrainInputsResolved:
    train_prefix: str
    validation_prefix: str
    en_replay_prefix: str | None
    nemo_checkpoint: str
    hf_dir: str


def pretrain_blend(s: PretrainSettings, train_prefix: str, en_replay_prefix: str | None) -> list:
    """Megatron blend list ``[weight, prefix, ...]``; English replay only when the data stage made it."""
    if s.replay_weight > 0 and en_replay_prefix:
        return [round(1.0 - s.replay_weight, 6), train_prefix, s.replay_weight, en_replay_prefix]
    return [train_prefix]


def pretrain_recipe(
    s: PretrainSettings,
    *,
    name: str,
    seed: int,
    inputs: PretrainInputsResolved,
    budget: StepBudget,
    gpus_per_node: int,
    num_nodes: int,
    run_dir: Path,
    index_dir: Path,
    changes: list[Change],
    wandb: WandbSettings,
) -> Any:
    import nemo_run as run
    from nemo.collections import llm

    check_batch(s.global_batch_size, s.micro_batch_size, gpus_per_node * num_nodes, "pretrain")
    warmup = s.warmup_steps if s.warmup_steps is not None else max(1, round(s.warmup_fraction * budget.steps))
    recipe = llm.qwen25_500m.pretrain_recipe(
        dir=str(run_dir),
        name=name,
        num_nodes=num_nodes,
        num_gpus_per_node=gpus_per_node,
        max_steps=budget.steps,
        seq_length=s.seq_length,
        global_batch_size=s.global_batch_size,
        micro_batch_size=s.micro_batch_size,
        warmup_steps=warmup,
        min_lr=s.min_lr,
        max_lr=s.max_lr,
        gradient_clip_val=s.grad_clip,
        val_check_interval=s.val_check_interval,
        limit_val_batches=s.limit_val_batches,
        log_every_n_steps=s.log_every_n_steps,
    )
    # model: Qwen2.5-0.5B, tied embeddings as in HF, trained at seq_length
    recipe.model = model_config(s.seq_length, s.tie_embeddings)
    # tokenizer: the imported model's own HF tokenizer
    tokenizer = hf_tokenizer(inputs.hf_dir)
    # data: Japanese train split (+ English replay by weight); validation on the held-out Japanese split
    recipe.data = run.Config(
        llm.PreTrainingDataModule,
        paths={
            "train": pretrain_blend(s, inputs.train_prefix, inputs.en_replay_prefix),
            "validation": [inputs.validation_prefix],
            "test": [inputs.validation_prefix],
        },
        seq_length=s.seq_length,
        tokenizer=tokenizer,
        micro_batch_size=s.micro_batch_size,
        global_batch_size=s.global_batch_size,
        num_workers=s.num_workers,
        seed=seed,
        split=None,  # splits come from separate datasets, not a ratio
        index_mapping_dir=str(index_dir),  # Megatron's sample-index cache, kept in WORK_DIR
    )
    # restore: start from the imported Qwen2.5-0.5B weights, fresh optimizer
    recipe.resume = restore_from(inputs.nemo_checkpoint)
    # optim/schedule: re-warm then cosine re-decay to the floor over the whole run
    cosine_schedule(recipe, budget.steps, warmup, s.max_lr, s.min_lr)
    recipe.optim.config.weight_decay = s.weight_decay
    # trainer: validation cadence, no sanity validation before step 0
    recipe.trainer.limit_test_batches = 0
    recipe.trainer.num_sanity_val_steps = 0
    recipe.trainer.limit_val_batches = s.limit_val_batches
    recipe.trainer.val_check_interval = min(s.val_check_interval, budget.steps)
    # (strictness stays NeMo's default: the untied import's extra output_layer.weight is simply not read,
    # while a weight the model needs and the checkpoint lacks still fails the restore)
    # checkpoint + logging: keep the newest k, TensorBoard + W&B
    recipe.log = nemo_logger(
        name=name,
        run_dir=run_dir,
        keep_last=s.keep_last,
        every_n_steps=min(s.ckpt_every_n_steps, budget.steps),
        wandb=wandb,
        wandb_config=wandb_run_config("pretrain", s, budget, inputs),
        stage="pretrain",
    )
    # environment: turn off only what this machine cannot run (listed in the plan)
    apply_changes(recipe, changes)
    return recipe


def wandb_run_config(stage: str, s: Any, budget: StepBudget | None, inputs: Any) -> dict[str, Any]:
    from jpqwen.config import to_jsonable

    cfg = {"stage": stage, "settings": to_jsonable(s), "inputs": to_jsonable(getattr(inputs, "__dict__", inputs))}
    if budget:
        cfg["steps"], cfg["tokens"] = budget.steps, budget.tokens
    return cfg


# ---------------------------------------------------------------- LoRA


def lora_recipe(
    s: LoraSettings,
    *,
    name: str,
    seed: int,
    base_checkpoint: str,
    hf_dir: str,
    dataset_root: Path,
    steps: int,
    gpus_per_node: int,
    run_dir: Path,
    changes: list[Change],
    wandb: WandbSettings,
    tie_embeddings: bool,
) -> Any:
    import nemo_run as run
    from nemo.collections import llm

    check_batch(s.global_batch_size, s.micro_batch_size, gpus_per_node, "lora")
    recipe = llm.qwen25_500m.finetune_recipe(
        dir=str(run_dir), name=name, num_nodes=1, num_gpus_per_node=gpus_per_node, peft_scheme="lora"
    )
    # model: the same architecture the continual-pretraining checkpoint was trained with
    recipe.model = model_config(s.seq_length, tie_embeddings)
    # restore: the continual-pretraining run's final checkpoint (the recipe points at nemo://Qwen/...)
    recipe.resume = restore_from(base_checkpoint)
    # PEFT: LoRA adapters on the chosen linear layers; the base stays frozen
    recipe.peft = run.Config(
        llm.peft.LoRA, dim=s.dim, alpha=s.alpha, dropout=s.dropout, target_modules=list(s.target_modules)
    )
    # data: instruction pairs {"input", "output"} as training.jsonl / validation.jsonl under dataset_root
    recipe.data = run.Config(
        llm.FineTuningDataModule,
        dataset_root=str(dataset_root),
        seq_length=s.seq_length,
        tokenizer=hf_tokenizer(hf_dir),
        micro_batch_size=s.micro_batch_size,
        global_batch_size=s.global_batch_size,
        num_workers=s.num_workers,
        seed=seed,
        dataset_kwargs={"prompt_template": s.prompt_template},  # loss on the output tokens only (NeMo default)
    )
    # optim/schedule
    cosine_schedule(recipe, steps, min(s.warmup_steps, max(1, steps // 10)), s.lr, s.min_lr)
    # trainer/strategy: settings PEFT needs with NeMo 2.3 (synchronous save, Megatron DDP, no context parallel)
    recipe.trainer.max_steps = steps
    recipe.trainer.val_check_interval = min(s.val_check_interval, steps)
    recipe.trainer.limit_val_batches = s.limit_val_batches
    recipe.trainer.num_sanity_val_steps = 0
    recipe.trainer.log_every_n_steps = s.log_every_n_steps
    recipe.trainer.strategy.ckpt_async_save = False
    recipe.trainer.strategy.ddp = "megatron"
    recipe.trainer.strategy.context_parallel_size = 1
    # checkpoint + logging
    recipe.log = nemo_logger(
        name=name,
        run_dir=run_dir,
        keep_last=s.keep_last,
        every_n_steps=min(s.ckpt_every_n_steps, steps),
        wandb=wandb,
        wandb_config=wandb_run_config("lora", s, None, {"base_checkpoint": base_checkpoint}),
        stage="lora",
    )
    # environment
    apply_changes(recipe, changes)
    return recipe


# ---------------------------------------------------------------- executors


def worker_env() -> dict[str, str]:
    """Environment of the training processes NeMo-Run starts (no secrets: W&B reads its key from the env)."""
    path = os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return {"PYTHONPATH": path, "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"}


def local_executor(gpus_per_node: int) -> Any:
    import nemo_run as run

    return run.LocalExecutor(ntasks_per_node=gpus_per_node, launcher="torchrun", env_vars=worker_env())


def slurm_executor(s: SlurmSettings, work: WorkDir) -> Any:
    """The same recipe on several nodes through Slurm, in the pinned NeMo image (pyxis/enroot)."""
    import nemo_run as run

    if not s.account:
        raise ConfigError(
            "pretrain.executor is 'slurm' but pretrain.slurm.account is not set",
            hint="--set pretrain.slurm.account=<your account> (and partition, nodes, time)",
        )
    job_dir = s.job_dir or str(work.runs / "slurm")
    mounts = [f"{work.root}:{work.root}", f"{REPO_ROOT}:{REPO_ROOT}", *s.container_mounts]
    return run.SlurmExecutor(
        account=s.account,
        partition=s.partition,
        nodes=s.nodes,
        ntasks_per_node=s.gpus_per_node,  # one task per GPU; srun starts them, no torchrun
        gpus_per_node=s.gpus_per_node,
        time=s.time,
        container_image=s.container_image,
        container_mounts=mounts,
        env_vars=worker_env(),
        exclusive=True,
        mem="0",  # all memory of each node
        tunnel=run.LocalTunnel(job_dir=job_dir),  # sbatch from this (login) node
        packager=run.Packager(),  # the code is mounted at the same path: nothing to ship
    )


def to_yaml(obj: Any) -> str:
    """A recipe (fiddle Config/Partial) through NeMo-Run's serializer; an executor (a dataclass) as its fields."""
    import dataclasses
    import json

    import yaml

    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        fields = {"_target_": f"{type(obj).__module__}.{type(obj).__qualname__}", **dataclasses.asdict(obj)}
        return yaml.safe_dump(json.loads(json.dumps(fields, default=str)), sort_keys=False, allow_unicode=True)
    from nemo_run.core.serialization.yaml import YamlSerializer

    return YamlSerializer().serialize(obj)
