"""The import / pretrain / lora recipes, built with NeMo 2.3.1's real classes on CPU.

NeMo is imported once for this module (~20 s on 2 cores). Upstream stages are
real stamps pointing at real files: Megatron datasets written by
megatron-core's own IndexedDatasetBuilder, the real Qwen tokenizer, the shipped
LoRA sample.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from jpqwen.config import REPO_ROOT, load_config
from jpqwen.errors import ConfigError
from jpqwen.nemo.environment import Stack
from jpqwen.paths import WorkDir
from jpqwen.stage import Stage

BARE = Stack(False, False, False, False, False, False)  # the lent GPU machine: no TE, no apex
FULL = Stack(True, True, True, True, True, True)  # the pinned container
HERMETIC = {"WANDB_MODE": "offline", "HF_HUB_OFFLINE": "1", "JPQWEN_ENV_FILE": "/nonexistent/.env"}
CLEAR = ("WANDB_API_KEY", "WANDB_MODE", "WANDB_PROJECT", "WANDB_ENTITY", "WANDB_TAGS", "MAX_STEPS", "TOKENS", "GPUS")


def _megatron_dataset(prefix: Path, docs: int, seed: int) -> str:
    import torch
    from megatron.core.datasets.indexed_dataset import IndexedDatasetBuilder

    prefix.parent.mkdir(parents=True, exist_ok=True)
    builder = IndexedDatasetBuilder(f"{prefix}.bin", dtype=np.int32)
    rng = np.random.default_rng(seed)
    for _ in range(docs):
        builder.add_item(torch.from_numpy(rng.integers(0, 151_000, size=int(rng.integers(300, 3000)), dtype=np.int32)))
        builder.end_document()
    builder.finalize(f"{prefix}.idx")
    return str(prefix)


@pytest.fixture(scope="module")
def upstream(tmp_path_factory, qwen_tokenizer_dir, llm):
    """A WORK_DIR where `make data` and `make import` have finished (real stamps, real files)."""
    work = WorkDir(tmp_path_factory.mktemp("work"))
    d = work.data
    out = {
        "train_prefix": _megatron_dataset(d / "ja_train_text_document", 60, 0),
        "validation_prefix": _megatron_dataset(d / "ja_validation_text_document", 20, 1),
        "en_replay_prefix": _megatron_dataset(d / "en_replay_text_document", 20, 2),
        "validation_jsonl": str(d / "ja_validation.jsonl"),
        "en_validation_jsonl": str(d / "en_validation.jsonl"),
    }
    Path(out["validation_jsonl"]).write_text('{"text": "検証用の文書です。"}\n', encoding="utf-8")
    Path(out["en_validation_jsonl"]).write_text('{"text": "A held-out English document."}\n', encoding="utf-8")
    Stage("data", work, config={"test": 1}).finish(out)
    ckpt = work.models / "qwen2.5-0.5b"
    (ckpt / "weights").mkdir(parents=True)
    (ckpt / "context").mkdir()
    Stage("import", work, config={"test": 1}).finish({"nemo_checkpoint": str(ckpt), "hf_dir": str(qwen_tokenizer_dir)})
    return work


def build(kind: str, work: WorkDir, overrides=(), env=None, stack: Stack = BARE, preset="default.yaml"):
    from jpqwen.nemo import train

    cfg = load_config(REPO_ROOT / "configs" / preset, list(overrides))
    with pytest.MonkeyPatch.context() as mp:
        for k in CLEAR:
            mp.delenv(k, raising=False)
        for k, v in {**HERMETIC, **(env or {})}.items():
            if v is None:
                mp.delenv(k, raising=False)
            else:
                mp.setenv(k, v)
        fn = {"pretrain": train.build_pretrain, "lora": train.build_lora}[kind]
        return fn(cfg, work, stack=stack)


@pytest.fixture(scope="module")
def pretrain(upstream):
    return build("pretrain", upstream)


# ---------------------------------------------------------------- restore


def test_nemo_recipe_alone_restores_nothing(llm):
    """Why the restore below exists: NeMo's pretrain recipe would train Qwen2.5-0.5B from random init."""
    assert llm.qwen25_500m.pretrain_recipe().resume.restore_config is None


def test_pretrain_restores_imported_weights_without_optimizer(pretrain, upstream):
    import fiddle as fdl
    from nemo import lightning as nl

    rc = pretrain.recipe.resume.restore_config
    assert rc is not None, "continual pretraining must restore the imported checkpoint"
    assert rc.path == str(upstream.models / "qwen2.5-0.5b")
    assert (rc.load_model_state, rc.load_optim_state) == (True, False)
    resume = fdl.build(pretrain.recipe.resume)  # NeMo's real AutoResume / RestoreConfig
    assert isinstance(resume, nl.AutoResume) and isinstance(resume.restore_config, nl.RestoreConfig)
    assert resume.restore_config.path == rc.path


# ---------------------------------------------------------------- data + tokenizer


def test_data_paths_and_replay_blend(pretrain, upstream):
    from jpqwen.nemo.inputs import data_inputs

    d = data_inputs(upstream)
    assert pretrain.recipe.data.paths == {
        "train": [0.95, d.train_prefix, 0.05, d.en_replay_prefix],
        "validation": [d.validation_prefix],
        "test": [d.validation_prefix],
    }


def test_replay_off_and_missing_replay_use_japanese_only(upstream):
    b = build("pretrain", upstream, ["pretrain.replay_weight=0"])
    assert b.recipe.data.paths["train"] == [str(upstream.data / "ja_train_text_document")]
    b = build("pretrain", upstream, ["pretrain.replay_weight=0.25"])
    assert b.recipe.data.paths["train"][0::2] == [0.75, 0.25]


def test_data_module_builds_megatron_samples_from_the_data_stamp(pretrain, process_group):
    """NeMo's PreTrainingDataModule, built for real, reads our .bin/.idx through megatron-core."""
    import fiddle as fdl

    dm = fdl.build(pretrain.recipe.data)
    assert dm.seq_length == 2048 and dm.build_kwargs["blend_per_split"][0][1] == [0.95, 0.05]
    dm.build(
        trainer_max_steps=2, trainer_val_check_interval=1, trainer_limit_val_batches=1, trainer_limit_test_batches=1
    )
    sample = dm._train_ds[0]
    assert sample["tokens"].shape[0] == 2048 and int(sample["tokens"].max()) < 151_936


def test_tokenizer_is_the_imported_models_hf_tokenizer(pretrain, qwen_tokenizer_dir):
    import fiddle as fdl
    from transformers import AutoTokenizer as HFAutoTokenizer

    cfg = pretrain.recipe.data.tokenizer
    assert cfg.pretrained_model_name == str(qwen_tokenizer_dir)
    tok = fdl.build(cfg)  # NeMo's AutoTokenizer
    hf = HFAutoTokenizer.from_pretrained(qwen_tokenizer_dir)
    text = "日本語の継続事前学習を行います。Qwen2.5"
    assert tok.text_to_ids(text) == hf(text)["input_ids"]
    assert tok.eos_id == 151643  # <|endoftext|>, the document separator of the data stage


def test_seq_length_reaches_model_and_data(upstream):
    b = build("pretrain", upstream, ["pretrain.seq_length=1024"])
    assert b.recipe.model.config.seq_length == b.recipe.data.seq_length == 1024


# ---------------------------------------------------------------- batch


def test_batch_defaults_split_evenly(pretrain):
    d = pretrain.recipe.data
    assert (d.micro_batch_size, d.global_batch_size) == (4, 64)
    assert pretrain.recipe.trainer.devices == 1 and pretrain.recipe.trainer.num_nodes == 1


@pytest.mark.parametrize(
    ("overrides", "env", "per_step"),
    [(["pretrain.global_batch_size=10"], {}, "4 x data-parallel size 1 = 4"), ([], {"GPUS": "3"}, "= 12")],
)
def test_batch_not_divisible_is_a_clear_error(upstream, overrides, env, per_step):
    with pytest.raises(ConfigError, match="not divisible") as err:
        build("pretrain", upstream, overrides, env)
    assert per_step in str(err.value) and "hint" in str(err.value)


# ---------------------------------------------------------------- LR schedule + steps


def _lrs(scheduler_cfg, max_lr: float, steps: int) -> list[float]:
    import fiddle as fdl
    import torch

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=max_lr)
    sched = fdl.build(scheduler_cfg).scheduler(None, opt)["lr_scheduler"]["scheduler"]
    lrs = []
    for _ in range(steps + 1):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return lrs


def test_lr_rewarms_then_cosine_decays_to_the_floor(upstream):
    b = build("pretrain", upstream, ["pretrain.tokens=13107200"])  # 100 steps of 64 x 2048
    steps = b.recipe.trainer.max_steps
    assert steps == 100 and b.recipe.optim.lr_scheduler.warmup_steps == 1
    b = build("pretrain", upstream, ["pretrain.max_steps=100", "pretrain.warmup_steps=10"])
    assert b.recipe.optim.config.lr == 1e-4
    lrs = _lrs(b.recipe.optim.lr_scheduler, 1e-4, 100)
    assert lrs[0] < lrs[5] < lrs[9] < 1e-4 * 1.0001  # linear warmup
    assert lrs[10] == pytest.approx(1e-4)  # peak after warmup
    mid = 1e-5 + 0.5 * (1e-4 - 1e-5) * (1 + math.cos(math.pi * 45 / 90))
    assert lrs[55] == pytest.approx(mid, rel=0.02)  # cosine
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:], strict=False))  # monotone decay
    assert lrs[100] == pytest.approx(1e-5)  # floor at the last step


def test_nemo_recipe_scheduler_would_stop_decaying_at_step_10(llm):
    """Why cosine_schedule sets max_steps: NeMo's recipe keeps the class default of 10."""
    r = llm.qwen25_500m.pretrain_recipe(max_steps=1000, warmup_steps=5, max_lr=3e-4, min_lr=3e-5)
    lrs = _lrs(r.optim.lr_scheduler, 3e-4, 30)
    assert lrs[20] == pytest.approx(3e-5)  # already at the floor 980 steps early


def test_env_tokens_and_max_steps(upstream):
    assert build("pretrain", upstream, env={"TOKENS": "1M"}).recipe.trainer.max_steps == 8  # ceil(1e6 / 131072)
    b = build("pretrain", upstream, ["pretrain.max_steps=20"], env={"MAX_STEPS": "7"})
    assert b.recipe.trainer.max_steps == b.recipe.optim.lr_scheduler.max_steps == 20


def test_val_and_checkpoint_cadence_and_keep_last(upstream):
    b = build("pretrain", upstream, preset="tiny.yaml")
    r = b.recipe
    assert r.trainer.max_steps == 20 and r.trainer.val_check_interval == 10 and r.trainer.limit_val_batches == 2
    assert (r.log.ckpt.every_n_train_steps, r.log.ckpt.save_top_k, r.log.ckpt.save_last) == (20, 1, True)
    assert (r.log.ckpt.monitor, r.log.ckpt.mode) == ("step", "max")  # newest k, not lowest val_loss
    assert r.log.log_dir == str(b.run_dir) and r.log.use_datetime_version is False


# ---------------------------------------------------------------- embeddings


def test_tied_embeddings_match_hf_parameter_count_and_restore_keys(llm, model_parallel):
    """Build Megatron's real GPT model (meta device) from NeMo's Qwen25Config500M, tied and untied."""
    import fiddle as fdl
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from jpqwen.fixtures import QWEN25_05B
    from jpqwen.nemo.recipes import model_config

    counts, keys = {}, {}
    for tie in (False, True):
        cfg = fdl.build(model_config(2048, tie).config)
        cfg.use_cpu_initialization, cfg.perform_initialization = True, False
        with torch.device("meta"):  # shapes only, no memory
            model = cfg.configure_model(None)
        counts[tie] = sum(p.numel() for p in model.parameters())
        keys[tie] = {
            k: tuple(v.global_shape) for k, v in model.sharded_state_dict().items() if hasattr(v, "global_shape")
        }
    with torch.device("meta"):
        hf = Qwen2ForCausalLM(Qwen2Config(**QWEN25_05B))
    assert counts[False] == 630_167_424  # NeMo's default: a separate 136 M LM head
    assert counts[True] == sum(p.numel() for p in hf.parameters()) == 494_032_768  # = HF Qwen2.5-0.5B
    # the importer writes the untied layout; the tied model asks for a subset of it, same shapes
    assert set(keys[False]) - set(keys[True]) == {"output_layer.weight"}
    assert all(keys[False][k] == shape for k, shape in keys[True].items())


def test_pretrain_and_lora_use_the_same_tied_architecture(pretrain, upstream):
    assert pretrain.recipe.model.config.share_embeddings_and_output_weights is True
    lora = _lora(upstream)
    assert lora.recipe.model.config.share_embeddings_and_output_weights is True


# ---------------------------------------------------------------- environment


def test_bare_gpu_machine_changes_are_applied(pretrain):
    import fiddle as fdl

    cfg = fdl.build(pretrain.recipe.model.config)
    assert not (
        cfg.masked_softmax_fusion or cfg.apply_rope_fusion or cfg.gradient_accumulation_fusion or cfg.persist_layer_norm
    )
    assert pretrain.recipe.optim.config.use_distributed_optimizer is False
    assert {c.target for c in pretrain.changes} >= {
        "model.config.masked_softmax_fusion",
        "optim.config.use_distributed_optimizer",
    }


def test_container_keeps_the_recipe_fusions(upstream, llm):
    import fiddle as fdl

    b = build("pretrain", upstream, stack=FULL)
    ours = fdl.build(b.recipe.model.config)
    nemo = fdl.build(llm.qwen25_500m.pretrain_recipe().model.config)
    for flag in ("masked_softmax_fusion", "apply_rope_fusion", "gradient_accumulation_fusion", "persist_layer_norm"):
        assert getattr(ours, flag) == getattr(nemo, flag)
    assert b.recipe.optim.config.use_distributed_optimizer is True
    assert all(c.target == "trainer.callbacks[+]" for c in b.changes)  # only the torch/mcore shim, if needed


# ---------------------------------------------------------------- loggers


def test_loggers_without_key_tensorboard_and_offline_wandb(upstream):
    import fiddle as fdl
    from lightning.pytorch.loggers import TensorBoardLogger, WandbLogger

    log = build("pretrain", upstream, env={"WANDB_MODE": None, "WANDB_PROJECT": "jp", "WANDB_TAGS": "a,b"}).recipe.log
    assert isinstance(fdl.build(log.tensorboard), TensorBoardLogger)
    assert log.wandb.offline is True and log.wandb.save_dir == str(upstream.wandb)
    assert log.wandb.project == "jp" and {"a", "b", "pretrain"} <= set(log.wandb.tags)
    assert isinstance(fdl.build(log.wandb), WandbLogger)


def test_loggers_with_key_are_online_and_the_key_stays_out_of_the_recipe(upstream):
    from jpqwen.nemo.recipes import to_yaml

    secret = "0123456789abcdef0123456789abcdef01234567"
    b = build("pretrain", upstream, env={"WANDB_MODE": None, "WANDB_API_KEY": secret, "WANDB_ENTITY": "team"})
    assert b.recipe.log.wandb.offline is False and b.recipe.log.wandb.entity == "team"
    assert secret not in to_yaml(b.recipe) and secret not in to_yaml(b.executor)


def test_wandb_disabled_leaves_tensorboard_only(upstream):
    log = build("pretrain", upstream, env={"WANDB_MODE": "disabled"}).recipe.log
    assert log.wandb is None and log.tensorboard is not None


# ---------------------------------------------------------------- executors


def test_local_executor_is_torchrun_with_gpus_processes(upstream):
    import nemo_run as run

    b = build("pretrain", upstream, env={"GPUS": "2"}, overrides=["pretrain.global_batch_size=64"])
    assert isinstance(b.executor, run.LocalExecutor)
    assert (b.executor.ntasks_per_node, b.executor.launcher) == (2, "torchrun")
    assert b.recipe.trainer.devices == 2 and str(REPO_ROOT) in b.executor.env_vars["PYTHONPATH"]


def test_slurm_executor_fields(upstream):
    import nemo_run as run

    sets = [
        "pretrain.executor=slurm",
        "pretrain.slurm.account=llm-ja",
        "pretrain.slurm.partition=h100",
        "pretrain.slurm.nodes=2",
        "pretrain.slurm.time=12:00:00",
        "pretrain.global_batch_size=128",
    ]
    b = build("pretrain", upstream, sets)
    ex = b.executor
    assert isinstance(ex, run.SlurmExecutor)
    assert (ex.account, ex.partition, ex.nodes, ex.ntasks_per_node, ex.gpus_per_node, ex.time) == (
        "llm-ja",
        "h100",
        2,
        8,
        8,
        "12:00:00",
    )
    assert ex.container_image == "nvcr.io/nvidia/nemo:25.04"
    assert f"{upstream.root}:{upstream.root}" in ex.container_mounts
    assert (b.recipe.trainer.num_nodes, b.recipe.trainer.devices) == (2, 8)


def test_slurm_without_account_is_a_clear_error(upstream):
    with pytest.raises(ConfigError, match="account"):
        build("pretrain", upstream, ["pretrain.executor=slurm"])


# ---------------------------------------------------------------- LoRA


def _lora(upstream, overrides=(), env=None):
    if not (upstream.stamps / "pretrain.json").is_file():
        ck = upstream.runs / "pretrain" / "r" / "checkpoints" / "m--val_loss=2.00-step=19-consumed_samples=160.0-last"
        (ck / "weights").mkdir(parents=True)
        (ck / "context").mkdir()
        Stage("pretrain", upstream, config={"test": 1}).finish({"checkpoint": str(ck)})
    return build("lora", upstream, overrides, env)


def test_lora_restores_the_pretrain_checkpoint_and_peft_settings(upstream, llm):
    import fiddle as fdl

    from jpqwen.stage import require_stage

    b = _lora(upstream, ["lora.dim=16", "lora.alpha=32", "lora.dropout=0.1", "lora.target_modules=[linear_qkv]"])
    r = b.recipe
    assert r.resume.restore_config.path == require_stage(upstream, "pretrain")["outputs"]["checkpoint"]
    assert (r.resume.restore_config.load_model_state, r.resume.restore_config.load_optim_state) == (True, False)
    peft = fdl.build(r.peft)
    assert isinstance(peft, llm.peft.LoRA)
    assert (peft.dim, peft.alpha, peft.dropout, peft.target_modules) == (16, 32, 0.1, ["linear_qkv"])
    s = r.trainer.strategy
    assert (s.ckpt_async_save, s.ddp, s.context_parallel_size) == (False, "megatron", 1)
    assert r.optim.config.lr == 1e-4 and r.optim.lr_scheduler.max_steps == r.trainer.max_steps


def test_lora_data_module_on_prepared_jsonl(upstream):
    import fiddle as fdl

    b = _lora(upstream)
    root = Path(b.recipe.data.dataset_root)
    assert (root / "training.jsonl").is_file() and (root / "validation.jsonl").is_file()
    dm = fdl.build(b.recipe.data)
    assert dm.train_path == root / "training.jsonl" and dm.seq_length == 2048
    assert dm.dataset_kwargs == {"prompt_template": "{input}\n{output}"}
    # NeMo's real SFT dataset on our jsonl: the prompt template, and loss on the answer tokens only
    dm.tokenizer = fdl.build(b.recipe.data.tokenizer)
    ds = dm._create_dataset(dm.train_path, **dm.dataset_kwargs)
    item = ds[0]
    pair = json.loads((root / "training.jsonl").read_text(encoding="utf-8").splitlines()[0])
    ids, answer_start = item["input_ids"], item["answer_start_idx"]
    assert dm.tokenizer.ids_to_text(ids[:answer_start]).strip() == pair["input"]
    assert pair["output"][:20] in dm.tokenizer.ids_to_text(ids[answer_start:])
    assert ids[-1] == dm.tokenizer.eos_id
    assert len(ds) == len((root / "training.jsonl").read_text(encoding="utf-8").splitlines())
    assert b.recipe.data.tokenizer.pretrained_model_name == b.stage_inputs["tokenizer"]


def test_lora_refuses_corpus_validation_split(upstream):
    from jpqwen.errors import InputError

    held = str(upstream.data / "ja_validation.jsonl")
    with pytest.raises(InputError, match="held-out split"):
        _lora(upstream, [f"lora.dataset={held}", "lora.validation=null"])


# ---------------------------------------------------------------- plan + YAML


def test_plan_without_upstream_stages_writes_yaml_and_summary(tmp_path, capsys, llm):
    import argparse

    import yaml

    from jpqwen.nemo import plan

    work = WorkDir(tmp_path / "fresh")
    cfg = load_config(REPO_ROOT / "configs" / "tiny.yaml")
    with pytest.MonkeyPatch.context() as mp:
        for k, v in HERMETIC.items():
            mp.setenv(k, v)
        for k in CLEAR:
            mp.delenv(k, raising=False)
        assert plan.run(argparse.Namespace(force=False), cfg, work) == 0
    out = capsys.readouterr().out
    for word in ("[import]", "[pretrain]", "[lora]", "pending: make data", "restore", "steps", "20", "executor"):
        assert word in out
    docs = {p.stem: yaml.safe_load(p.read_text()) for p in work.plans.glob("*.yaml")}
    assert set(docs) == {"import", "pretrain", "lora", "pretrain.executor", "lora.executor"}
    assert docs["pretrain"]["resume"]["restore_config"]["path"] == str(work.models / "qwen2.5-0.5b")
    assert docs["pretrain"]["trainer"]["max_steps"] == 20
    assert docs["import"]["_target_"] == "nemo.collections.llm.api.import_ckpt"
    assert docs["import"]["source"] == "hf://Qwen/Qwen2.5-0.5B"
