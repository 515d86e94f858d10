"""Settings, upstream inputs, environment detection, LoRA data, import source: no NeMo import (fast)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jpqwen.config import load_config, section
from jpqwen.errors import ConfigError, InputError, OfflineError
from jpqwen.nemo import environment, inputs, lora_data
from jpqwen.nemo.import_ckpt import check_hf_dir, fp32_copy, needs_fp32_copy, parse_source, resolve_source
from jpqwen.nemo.settings import (
    ImportSettings,
    LoraSettings,
    PretrainSettings,
    parse_count,
    resolve_gpus,
    resolve_steps,
)
from jpqwen.stage import Stage

REPO = Path(__file__).resolve().parents[2]


# ---------------------------------------------------------------- steps, batch, GPUs


def test_presets_parse_into_typed_sections():
    for preset in ("default.yaml", "tiny.yaml"):
        cfg = load_config(REPO / "configs" / preset)
        p = section(cfg, "pretrain", PretrainSettings)
        lo = section(cfg, "lora", LoraSettings)
        section(cfg, "import", ImportSettings)
        assert p.seq_length == 2048 and lo.dim > 0
    tiny = section(load_config(REPO / "configs" / "tiny.yaml"), "pretrain", PretrainSettings)
    assert tiny.max_steps == 20 and tiny.val_check_interval == 10 and tiny.ckpt_every_n_steps == 20


def test_unknown_key_names_the_file():
    cfg = load_config(REPO / "configs" / "tiny.yaml", ["pretrain.max_step=3"])
    with pytest.raises(ConfigError, match=r"tiny.yaml.*max_step"):
        section(cfg, "pretrain", PretrainSettings)


@pytest.mark.parametrize(
    ("text", "count"), [("500M", 500_000_000), ("2B", 2_000_000_000), ("1.5k", 1500), (20, 20), ("3e6", 3_000_000)]
)
def test_parse_count(text, count):
    assert parse_count(text, "x") == count


def test_parse_count_rejects_garbage():
    with pytest.raises(ConfigError, match="TOKENS"):
        parse_count("lots", "env TOKENS")


def test_steps_from_token_budget_round_up():
    s = PretrainSettings(tokens="1M", global_batch_size=8, seq_length=2048)  # 16384 tokens per step
    b = resolve_steps(s, environ={})
    assert b.steps == 62 and b.tokens == 62 * 16384  # ceil(1e6 / 16384)


def test_step_precedence_set_over_env_over_preset():
    s = PretrainSettings(tokens="1M", max_steps=None, global_batch_size=8, seq_length=2048)
    assert resolve_steps(s, environ={"TOKENS": "2M"}).steps == 123
    assert resolve_steps(s, environ={"TOKENS": "2M", "MAX_STEPS": "7"}).steps == 7
    s.max_steps = 20
    assert resolve_steps(s, ["pretrain.max_steps=20"], environ={"MAX_STEPS": "7"}).steps == 20
    assert resolve_steps(s, environ={}).steps == 20  # preset max_steps beats preset tokens
    assert resolve_steps(s, environ={"MAX_STEPS": "7"}).source == "env MAX_STEPS"


def test_gpus_resolution():
    assert resolve_gpus(None, environ={"GPUS": "2"}) == 2
    assert resolve_gpus("all", environ={}, visible=4) == 4
    assert resolve_gpus(None, environ={}, visible=0) == 1  # the plan on a CPU machine
    with pytest.raises(ConfigError, match="GPUS"):
        resolve_gpus(None, environ={"GPUS": "two"})


def test_settings_validation():
    with pytest.raises(ConfigError, match="replay_weight"):
        PretrainSettings(replay_weight=1.5)
    with pytest.raises(ConfigError, match="executor"):
        PretrainSettings(executor="k8s")
    with pytest.raises(ConfigError, match="target_modules"):
        LoraSettings(target_modules=[])


# ---------------------------------------------------------------- environment


def test_full_stack_keeps_every_fusion():
    full = environment.Stack(True, True, True, True, True, True)
    assert environment.model_changes(full) == [] and environment.optim_changes(full) == []


def test_bare_gpu_machine_turns_off_what_the_probe_needed():
    bare = environment.Stack(False, False, False, False, False, False)
    targets = {c.target: c.value for c in environment.model_changes(bare) + environment.optim_changes(bare)}
    assert targets == {
        "model.config.masked_softmax_fusion": False,
        "model.config.apply_rope_fusion": False,
        "model.config.gradient_accumulation_fusion": False,
        "model.config.persist_layer_norm": False,
        "optim.config.use_distributed_optimizer": False,
    }
    assert all(c.reason for c in environment.model_changes(bare))


def test_te_without_apex_only_loses_apex_kernels():
    te_only = environment.Stack(True, False, False, False, False, False)
    assert [c.target for c in environment.model_changes(te_only)] == ["model.config.gradient_accumulation_fusion"]
    assert environment.optim_changes(te_only) == []


def test_this_machine_is_detected_without_te():
    stack = environment.Stack.detect()
    assert stack.transformer_engine is False  # the CPU venv has no Transformer Engine
    assert "no Transformer Engine" in stack.describe()


def test_write_item_shim_matches_the_installed_torch_and_mcore():
    import inspect

    from torch.distributed.checkpoint import filesystem

    wants = "serialization_format" in inspect.signature(filesystem._write_item).parameters
    assert environment.mcore_write_item_needs_shim() is wants  # torch 2.13 + mcore 0.12.1 here: True
    if wants:
        patched = environment.apply_runtime_patches()
        import megatron.core.dist_checkpointing.strategies.filesystem_async as fsa

        assert patched and fsa._write_item._jpqwen_shim
        assert environment.apply_runtime_patches() == patched  # idempotent


# ---------------------------------------------------------------- upstream stamps


def test_data_inputs_from_stamp_and_pending(work):
    pend = inputs.data_inputs(work, allow_pending=True)
    assert pend.pending and pend.train_prefix.startswith(str(work.data))
    with pytest.raises(Exception, match="make data"):
        inputs.data_inputs(work)
    Stage("data", work, config={}).finish({"train_prefix": "/x/train", "validation_prefix": "/x/val"})
    got = inputs.data_inputs(work)
    assert (got.train_prefix, got.validation_prefix, got.en_replay_prefix, got.pending) == (
        "/x/train",
        "/x/val",
        None,
        False,
    )


def test_data_stamp_without_a_key_is_a_clear_error(work):
    Stage("data", work, config={}).finish({"train_prefix": "/x/train"})
    with pytest.raises(InputError, match="validation_prefix"):
        inputs.data_inputs(work)


def test_missing_megatron_files_named(tmp_path):
    (tmp_path / "p.bin").write_bytes(b"")
    with pytest.raises(InputError, match=r"p\.idx"):
        inputs.check_megatron_prefix(str(tmp_path / "p"), "train_prefix")


def _ckpt(root: Path, name: str, context: bool = True) -> Path:
    d = root / name
    (d / "weights").mkdir(parents=True)
    if context:
        (d / "context").mkdir()
    return d


def test_final_checkpoint_is_highest_step_last_wins_tie(tmp_path):
    _ckpt(tmp_path, "m--val_loss=2.10-step=9-consumed_samples=80.0")
    _ckpt(tmp_path, "m--val_loss=2.00-step=19-consumed_samples=160.0")
    last = _ckpt(tmp_path, "m--val_loss=2.00-step=19-consumed_samples=160.0-last")
    _ckpt(tmp_path, "m--val_loss=1.00-step=29-consumed_samples=240.0", context=False)  # half written
    assert inputs.find_final_checkpoint(tmp_path) == last
    assert inputs.checkpoint_step(last) == 19
    assert inputs.find_final_checkpoint(tmp_path, require_context=False).name.startswith("m--val_loss=1.00-step=29")


def test_no_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(InputError, match="no NeMo checkpoint"):
        inputs.find_final_checkpoint(tmp_path / "checkpoints")


# ---------------------------------------------------------------- LoRA data


def _jsonl(path: Path, rows) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in rows))
    return path


def test_lora_pairs_bad_line_named(tmp_path):
    p = _jsonl(tmp_path / "d.jsonl", [{"input": "質問", "output": "答え"}, '{"input": "x"', {"input": "q"}])
    with pytest.raises(InputError, match=r"d\.jsonl:2: not valid JSON"):
        lora_data.read_pairs(p)
    p = _jsonl(tmp_path / "d.jsonl", [{"input": "質問", "output": "答え"}, {"input": "q", "output": " "}])
    with pytest.raises(InputError, match=r"d\.jsonl:2: field 'output'"):
        lora_data.read_pairs(p)


def test_lora_prepare_holds_out_validation_deterministically(work, tmp_path):
    rows = [{"input": f"問{i}", "output": f"答{i}"} for i in range(40)]
    src = _jsonl(tmp_path / "train.jsonl", rows)
    s = LoraSettings(dataset=str(src), validation=None, validation_fraction=0.1)
    a = lora_data.prepare(s, work, None, seed=1)
    b = lora_data.prepare(s, work, None, seed=1)
    assert (a.train_examples, a.validation_examples) == (36, 4) and a.root == b.root
    train = [json.loads(x) for x in (a.root / "training.jsonl").read_text().splitlines()]
    val = [json.loads(x) for x in (a.root / "validation.jsonl").read_text().splitlines()]
    assert sorted(r["input"] for r in train + val) == sorted(r["input"] for r in rows)  # nothing lost
    assert not {r["input"] for r in train} & {r["input"] for r in val}


def test_lora_shipped_sample_is_valid(work):
    ds = lora_data.prepare(LoraSettings(), work, None, seed=0)
    assert ds.train_examples >= 20 and ds.validation_examples >= 1


def test_lora_refuses_the_corpus_validation_split(work, tmp_path):
    held = _jsonl(tmp_path / "ja_validation.jsonl", [{"input": "a", "output": "b"}])
    copy = _jsonl(tmp_path / "copy.jsonl", [{"input": "a", "output": "b"}])
    data = inputs.DataInputs("/t", "/v", None, str(held), None)
    for path in (held, copy):  # the file itself, or a byte-identical copy
        with pytest.raises(InputError, match="held-out split"):
            lora_data.prepare(LoraSettings(dataset=str(path), validation=None), work, data, seed=0)


def test_lora_hf_id_offline_is_a_clear_error(work):
    s = LoraSettings(dataset="someone/japanese-dolly-not-cached", validation=None)
    with pytest.raises(OfflineError, match="japanese-dolly"):
        lora_data.prepare(s, work, None, seed=0)


# ---------------------------------------------------------------- import source


def test_parse_source():
    assert parse_source("hf://Qwen/Qwen2.5-0.5B") == ("repo", "Qwen/Qwen2.5-0.5B")
    assert parse_source("hf:///models/q") == ("dir", "/models/q")
    assert parse_source("Qwen/Qwen2.5-0.5B") == ("repo", "Qwen/Qwen2.5-0.5B")


def test_offline_without_local_copy_is_offline_error(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty cache
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    with pytest.raises(OfflineError, match=r"Qwen/Qwen2.5-0.5B is not in the Hugging Face cache"):
        resolve_source(ImportSettings(source="hf://Qwen/Qwen2.5-0.5B"))


def test_local_dir_source(tiny_qwen_dir, tmp_path):
    assert resolve_source(ImportSettings(source=str(tiny_qwen_dir))) == tiny_qwen_dir
    assert resolve_source(ImportSettings(source=f"hf://{tiny_qwen_dir}")) == tiny_qwen_dir
    with pytest.raises(InputError, match="no config.json"):
        check_hf_dir(str(tmp_path))


def test_bf16_source_upcast_only_without_te(tmp_path):
    import torch
    from transformers import AutoModelForCausalLM

    from jpqwen.fixtures import make_random_qwen2

    src = make_random_qwen2(tmp_path / "bf16", dtype="bfloat16")
    s = ImportSettings()
    assert needs_fp32_copy(s, src, transformer_engine=False) is True
    assert needs_fp32_copy(s, src, transformer_engine=True) is False
    out = fp32_copy(src, tmp_path / "fp32")
    assert json.loads((out / "config.json").read_text())["torch_dtype"] == "float32"
    assert (out / "tokenizer.json").is_file()
    a = AutoModelForCausalLM.from_pretrained(src, torch_dtype=torch.float32)
    b = AutoModelForCausalLM.from_pretrained(out)
    assert next(b.parameters()).dtype == torch.float32
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))
