"""`make handoff`: a complete, verified package the SFT/DPO team can train from."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from jpqwen.cli import stage_main
from jpqwen.errors import InputError
from jpqwen.release.handoff import HandoffError, check_no_secrets, choose_model, run
from jpqwen.release.manifest import verify_manifest
from pipeline.handoff import parser

FAKE_HF = "hf_FAKEtoken0123456789abcdefXYZ"
FAKE_WANDB = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(scope="module")
def evaluated_once(tmp_path_factory, stage_models, upstream_builder, write_record) -> Path:
    """Upstream records + pretrain/lora records with settings + a data card + a real (small) eval run.

    Built once per module (the eval is the slow part); each test gets a fresh copy of the records.
    """
    from jpqwen.hf.evaluate import run as eval_run
    from jpqwen.paths import WorkDir
    from pipeline.eval import parser as eval_parser

    scratch = tmp_path_factory.mktemp("handoff_upstream")
    work = upstream_builder(WorkDir(scratch / "work"), stage_models, scratch)
    card = scratch / "data_card.json"
    card.write_text(json.dumps({"documents_in": 1000, "documents_kept": 812, "tokens": {"train": 123456}}))
    data = json.loads((work.stamps / "data.json").read_text())
    write_record(work, "data", {**data["outputs"], "data_card": str(card)})
    for name, settings in (
        ("pretrain", {"pretrain": {"max_lr": 1e-4, "seq_length": 2048, "global_batch_size": 64, "tokens": "500M"}}),
        ("lora", {"lora": {"dim": 32, "alpha": 32, "lr": 1e-4, "dataset": "ja_instructions.jsonl"}}),
    ):
        write_record(work, name, {"checkpoint": str(scratch / f"{name}-ckpt")}, settings, {"final_step": 42})
    prompts = scratch / "ja.json"
    prompts.write_text(json.dumps(["日本の首都は"], ensure_ascii=False))
    args = ["--work-dir", str(work.root), "--set", "eval.max_docs_ja=1", "--set", "eval.max_docs_en=1"]
    args += ["--set", "eval.max_new_tokens=4", "--set", "eval.wandb=false"]
    args += ["--set", f"eval.prompts_ja={prompts}", "--set", f"eval.prompts_en={prompts}"]
    assert stage_main("eval", eval_run, eval_parser(), args) == 0
    return work.stamps


@pytest.fixture
def evaluated(evaluated_once, work):
    shutil.copytree(evaluated_once, work.stamps)
    return work


def handoff(work, *extra) -> int:
    return stage_main("handoff", run, parser(), ["--work-dir", str(work.root), *extra])


def test_package_is_complete_and_verified(evaluated, stage_models, capsys):
    work = evaluated
    assert handoff(work) == 0
    root = work.handoff / "qwen25-05b-ja-wiki-lora_merged"  # auto = last stage of the lineage
    names = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}
    assert {
        "config.json",
        "generation_config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "README.md",
        "lineage.json",
        "parity.json",
        "eval/results.json",
        "eval/results.md",
        "eval/results.png",
        "manifest.json",
        "SHA256SUMS",
    } <= names

    # the manifest: every other file, with sizes and sha256 computed here independently
    manifest = json.loads((root / "manifest.json").read_text())
    listed = {f["path"]: f for f in manifest["files"]}
    assert set(listed) == names - {"manifest.json", "SHA256SUMS"}
    for rel, f in listed.items():
        data = (root / rel).read_bytes()
        assert f["bytes"] == len(data) and f["sha256"] == hashlib.sha256(data).hexdigest()
    assert subprocess.run(["sha256sum", "-c", "--quiet", "SHA256SUMS"], cwd=root).returncode == 0
    # the model files are the export's, byte for byte
    exported = stage_models["lora_merged"]
    assert (root / "model.safetensors").read_bytes() == (exported / "model.safetensors").read_bytes()

    card = (root / "README.md").read_text(encoding="utf-8")
    results = json.loads((root / "eval" / "results.json").read_text())
    for section in ("## 日本語", "### 系譜", "### 限界", "### ライセンス", "## English", "### Lineage"):
        assert section in card
    for section in ("### Training data", "### Hyperparameters", "### Evaluation", "### Limitations", "### Licences"):
        assert section in card
    assert "base_model: Qwen/Qwen2.5-0.5B" in card and "license: apache-2.0" in card
    assert "Apache License 2.0" in card and "CC BY-SA 4.0" in card
    assert "ベースモデル (Qwen2.5-0.5B) → 継続事前学習 → LoRA (マージ済み)" in card
    assert "base model (Qwen2.5-0.5B) → continual pretraining → LoRA (merged)" in card
    for stage, r in results["stages"].items():
        assert f"{r['ja']['bits_per_char']:.4f}" in card, stage
    assert "| max_lr | 0.0001 |" in card and "| dim | 32 |" in card and "| documents_kept | 812 |" in card
    assert "| lora_merged | PASS |" in card
    assert "0.5B" in card and "sha256sum -c SHA256SUMS" in card

    lineage = json.loads((root / "lineage.json").read_text())
    assert [s["stage"] for s in lineage["steps"]] == ["base", "continued", "lora_merged"]
    stamp = json.loads((work.stamps / "handoff.json").read_text())
    assert stamp["outputs"]["model_dir"] == str(root)
    assert stamp["metrics"]["verification"]["max_abs_logprob_diff_vs_export"] == 0.0
    assert "loads with AutoModelForCausalLM" in capsys.readouterr().out

    assert handoff(work, "--set", "handoff.model=continued", "--set", "handoff.name=ja-continued") == 0
    card = (work.handoff / "ja-continued" / "README.md").read_text(encoding="utf-8")
    assert "LoRA (merged)" not in card.split("## English")[1].split("### Training data")[0]


def test_secrets_never_reach_the_package(evaluated, monkeypatch, tmp_path, capsys):
    work = evaluated
    monkeypatch.setenv("HF_TOKEN", FAKE_HF)
    monkeypatch.setenv("WANDB_API_KEY", FAKE_WANDB)
    # not secrets, and their values ("false" is in every tokenizer.json) must not stop the handoff
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")
    monkeypatch.setenv("TOKENS", "2000000")
    # someone pasted a token into a config: it is in the pretrain record the card reads
    pre = json.loads((work.stamps / "pretrain.json").read_text())
    pre["config"]["pretrain"]["note"] = f"token {FAKE_HF}"
    (work.stamps / "pretrain.json").write_text(json.dumps(pre))
    assert handoff(work, "--set", "handoff.wandb_artifact=never") == 0
    root = work.handoff / "qwen25-05b-ja-wiki-lora_merged"
    for p in [*root.rglob("*"), work.stamps / "handoff.json"]:
        if p.is_file():
            data = p.read_bytes()
            assert FAKE_HF.encode() not in data and FAKE_WANDB.encode() not in data, p
    assert "token ***" in (root / "lineage.json").read_text()
    out = capsys.readouterr()
    assert FAKE_HF not in out.out + out.err and FAKE_WANDB not in out.out + out.err

    (root / "notes.txt").write_text(f"oops {FAKE_WANDB}")
    with pytest.raises(
        HandoffError, match="notes.txt contains the value of the secret environment variable WANDB_API_KEY;"
    ):
        check_no_secrets(root)
    assert FAKE_WANDB not in capsys.readouterr().err


def test_failed_hub_upload_names_the_repo_not_the_token(evaluated, monkeypatch, capsys):
    monkeypatch.setenv("HF_TOKEN", FAKE_HF)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # no network here: the upload must fail, and say so
    rc = handoff(evaluated, "--set", "handoff.hub_repo=jpqwen-test/never-created")
    err = capsys.readouterr().err
    assert rc != 0
    assert "jpqwen-test/never-created" in err and FAKE_HF not in err
    assert (evaluated.handoff / "qwen25-05b-ja-wiki-lora_merged" / "manifest.json").is_file()  # package kept


@pytest.mark.slow  # W&B's service start dominates; the eval test covers offline W&B by default
def test_wandb_artifact_offline(evaluated):
    assert handoff(evaluated, "--set", "handoff.wandb_artifact=always") == 0
    stamp = json.loads((evaluated.stamps / "handoff.json").read_text())
    assert stamp["metrics"]["published"]["wandb"].startswith("offline: artifact")
    assert list(evaluated.wandb.rglob("offline-run-*"))


def test_manifest_catches_changed_missing_and_extra_files(evaluated):
    assert handoff(evaluated, "--set", "handoff.model=base") == 0
    root = evaluated.handoff / "qwen25-05b-ja-wiki-base"
    assert verify_manifest(root) == []
    manifest = json.loads((root / "manifest.json").read_text())
    assert all(not Path(f["path"]).is_absolute() and ".." not in f["path"] for f in manifest["files"])
    (root / "generation_config.json").write_text("{}")
    (root / "eval" / "results.png").unlink()
    (root / "extra.bin").write_bytes(b"x")
    problems = verify_manifest(root)
    assert "generation_config.json: content differs from the manifest (sha256)" in problems
    assert "eval/results.png: missing" in problems
    assert "extra.bin: not in the manifest" in problems


def test_choose_model():
    models = {"base": "/b", "continued": "/c"}
    assert choose_model(models, "auto") == "continued"
    assert choose_model(models, "base") == "base"
    with pytest.raises(InputError, match="handoff.model='lora_merged' was not exported"):
        choose_model(models, "lora_merged")


def test_handoff_needs_eval(upstream, capsys):
    assert handoff(upstream) == 2
    assert "make eval" in capsys.readouterr().err


def test_export_stops_in_seconds_without_a_gpu(upstream, monkeypatch, capsys):
    from jpqwen.release.export import run as export_run
    from pipeline.export import parser as export_parser

    monkeypatch.setenv("JPQWEN_FORCE_NO_GPU", "1")
    assert stage_main("export", export_run, export_parser(), ["--work-dir", str(upstream.root)]) == 3
    assert "needs 1 NVIDIA GPU" in capsys.readouterr().err


def sft_dataset():
    from datasets import Dataset

    rows = [
        {"prompt": "日本の首都はどこですか。", "completion": "日本の首都は東京です。"},
        {"prompt": "富士山の高さは？", "completion": "標高は3776メートルです。"},
    ]
    return Dataset.from_list(rows * 2)


def test_trl_sft_step_on_the_handed_off_model(evaluated, tmp_path):
    """What the SFT team will do first: from_pretrained the package, one optimisation step with TRL."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    assert handoff(evaluated) == 0
    root = evaluated.handoff / "qwen25-05b-ja-wiki-lora_merged"
    model = AutoModelForCausalLM.from_pretrained(root)
    tokenizer = AutoTokenizer.from_pretrained(root)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    cfg = SFTConfig(
        output_dir=str(tmp_path / "sft"),
        max_steps=1,
        per_device_train_batch_size=2,
        learning_rate=1e-3,
        max_length=64,
        logging_steps=1,
        report_to=[],
        save_strategy="no",
        use_cpu=True,
        dataloader_num_workers=0,
    )
    trainer = SFTTrainer(model=model, args=cfg, train_dataset=sft_dataset(), processing_class=tokenizer)
    result = trainer.train()
    assert result.global_step == 1
    assert torch.isfinite(torch.tensor(result.training_loss)) and result.training_loss > 0
    changed = [n for n, p in model.named_parameters() if not torch.equal(p.detach(), before[n])]
    assert "model.embed_tokens.weight" in changed and len(changed) > len(before) // 2
    trainer.save_model(str(tmp_path / "sft" / "final"))
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path / "sft" / "final")
    assert reloaded.config.vocab_size == model.config.vocab_size
    shutil.rmtree(tmp_path / "sft")


@pytest.mark.slow
def test_trl_dpo_step_on_the_handed_off_model(evaluated, tmp_path):
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    assert handoff(evaluated) == 0
    root = evaluated.handoff / "qwen25-05b-ja-wiki-lora_merged"
    model = AutoModelForCausalLM.from_pretrained(root)
    tokenizer = AutoTokenizer.from_pretrained(root)
    pairs = [{"prompt": "日本の首都は", "chosen": "東京です。", "rejected": "大阪です。"}] * 4
    cfg = DPOConfig(
        output_dir=str(tmp_path / "dpo"),
        max_steps=1,
        per_device_train_batch_size=2,
        max_length=32,
        report_to=[],
        save_strategy="no",
        use_cpu=True,
    )
    trainer = DPOTrainer(model=model, args=cfg, train_dataset=Dataset.from_list(pairs), processing_class=tokenizer)
    result = trainer.train()
    assert result.global_step == 1 and torch.isfinite(torch.tensor(result.training_loss))
