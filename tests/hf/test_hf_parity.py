"""The export parity check passes a faithful export and fails a corrupted one, loudly."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from jpqwen.hf.parity import HFLogProbs, ParityError, PrecomputedLogProbs, save_reference, verify_export
from jpqwen.release.export import DEFAULT_PARITY_PROMPTS, finalize_hf_dir, parity_or_raise

PROMPTS = DEFAULT_PARITY_PROMPTS[:3]


@pytest.fixture(scope="module")
def source_dir(tmp_path_factory) -> Path:
    """The model to export. initializer_range 0.1 (not 0.02) makes the random model's next-token
    distribution peaked like a trained model's, instead of nearly uniform."""
    from jpqwen.fixtures import make_random_qwen2

    return make_random_qwen2(tmp_path_factory.mktemp("source"), seed=3, initializer_range=0.1)


@pytest.fixture(scope="module")
def reference(source_dir):
    return HFLogProbs(source_dir, device="cpu")


def nemo_like_export(source_dir: Path, out: Path, corrupt=None) -> Path:
    """What NeMo's HF exporter leaves: weights + config with the *training* seq length, its own tokenizer
    save, no generation_config.json. ``corrupt(model)`` damages one tensor first."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(source_dir)
    if corrupt is not None:
        with torch.no_grad():
            corrupt(model)
    model.config.max_position_embeddings = 512  # NeMo writes the training seq_length here
    model.config.sliding_window = 512
    model.save_pretrained(out, safe_serialization=True)
    (out / "generation_config.json").unlink(missing_ok=True)
    AutoTokenizer.from_pretrained(source_dir).save_pretrained(out)
    return out


def add_noise(model):
    w = model.model.layers[1].mlp.down_proj.weight
    w.add_(w.std() * __import__("torch").randn_like(w))


def permute_k_rows(model):  # what a wrong q/k/v split looks like: right numbers, wrong places
    w = model.model.layers[0].self_attn.k_proj.weight
    w.copy_(w.flip(0))


def zero_o_proj(model):
    model.model.layers[1].self_attn.o_proj.weight.zero_()


def test_faithful_export_passes(source_dir, reference, tmp_path):
    cand = nemo_like_export(source_dir, tmp_path / "cand")
    changes = finalize_hf_dir(cand, source_dir)
    assert "config.json max_position_embeddings: 512 -> 2048 (from the base model)" in changes
    assert json.loads((cand / "config.json").read_text())["max_position_embeddings"] == 2048
    assert "copied generation_config.json from the base model" in changes
    report = verify_export(reference, cand, PROMPTS, device="cpu")
    assert report.passed, report.summary()
    assert report.max_abs_diff < 1e-4  # float32 save/reload is exact up to kernel order
    assert all(p.top1_agreement == 1.0 for p in report.prompts)
    assert {c.check for c in report.consistency} == {"config", "tie_word_embeddings", "tokenizer", "generation_config"}
    record = parity_or_raise(report, tmp_path, "continued", changes)
    assert json.loads((tmp_path / "continued.parity.json").read_text())["passed"] is True
    assert record["finalize_changes"] == changes


@pytest.mark.parametrize("corrupt", [add_noise, permute_k_rows, zero_o_proj], ids=lambda f: f.__name__)
def test_one_corrupted_tensor_fails_loudly(source_dir, reference, tmp_path, corrupt):
    cand = nemo_like_export(source_dir, tmp_path / "cand", corrupt=corrupt)
    finalize_hf_dir(cand, source_dir)
    report = verify_export(reference, cand, PROMPTS, device="cpu")
    assert not report.passed
    assert report.max_abs_diff > 10 * report.atol  # far outside the tolerance, not marginal
    assert all(c.ok for c in report.consistency)  # the files look fine: only the numbers catch it
    worst = report.worst()
    with pytest.raises(ParityError) as exc:
        parity_or_raise(report, tmp_path, "continued")
    message = str(exc.value)
    assert "FAIL" in message and f"prompt {worst.prompt!r}" in message and repr(worst.worst_token) in message
    assert exc.value.exit_code != 0
    assert json.loads((tmp_path / "continued.parity.json").read_text())["passed"] is False


def test_consistency_checks_catch_broken_files(source_dir, reference, tmp_path):
    cand = nemo_like_export(source_dir, tmp_path / "cand")
    finalize_hf_dir(cand, source_dir)
    cfg = json.loads((cand / "config.json").read_text())
    cfg.update(tie_word_embeddings=False, rope_theta=10000.0)  # untied but no lm_head.weight stored
    if "rope_parameters" in cfg:  # transformers 5 reads RoPE settings from here
        cfg["rope_parameters"]["rope_theta"] = 10000.0
    (cand / "config.json").write_text(json.dumps(cfg))
    tok_cfg = json.loads((cand / "tokenizer_config.json").read_text())
    tok_cfg["eos_token"] = "<|im_end|>"
    (cand / "tokenizer_config.json").write_text(json.dumps(tok_cfg))
    (cand / "generation_config.json").unlink()
    report = verify_export(reference, cand, PROMPTS, device="cpu")
    failed = {c.check: c.detail for c in report.consistency if not c.ok}
    assert "rope_theta" in failed["config"]
    assert "tie_word_embeddings" in failed
    assert "eos_token" in failed["tokenizer"]
    assert "missing" in failed["generation_config"]
    assert not report.passed


def test_untied_export_must_store_lm_head(source_dir, tmp_path):
    """NeMo's Qwen2.5-0.5B config does not tie embeddings; the exporter then writes tie_word_embeddings=False."""
    import torch
    from transformers import AutoModelForCausalLM

    untied = tmp_path / "untied"
    shutil.copytree(source_dir, untied)
    model = AutoModelForCausalLM.from_pretrained(source_dir, tie_word_embeddings=False)
    with torch.no_grad():
        model.lm_head.weight.copy_(model.model.embed_tokens.weight)
    model.save_pretrained(untied)
    ref = HFLogProbs(untied, device="cpu")
    assert ref.config_view()["tie_word_embeddings"] is False
    report = verify_export(ref, untied, PROMPTS[:1], device="cpu")
    assert report.passed, report.summary()


def test_precomputed_reference_round_trip(source_dir, reference, tmp_path):
    """The file format the NeMo worker writes (jpqwen.release.nemo_worker) drives the same check."""
    tok = reference.tokenizer
    records = []
    for p in PROMPTS:
        ids = tok(p, add_special_tokens=False)["input_ids"]
        records.append({"prompt": p, "token_ids": ids, "logprobs": reference.logprobs(ids)})
    path = save_reference(tmp_path / "ref.pt", "saved", "float32", reference.config_view(), tok, records)
    saved = PrecomputedLogProbs(path)
    cand = nemo_like_export(source_dir, tmp_path / "cand")
    finalize_hf_dir(cand, source_dir)
    assert verify_export(saved, cand, PROMPTS, device="cpu").passed
    bad = nemo_like_export(source_dir, tmp_path / "bad", corrupt=zero_o_proj)
    finalize_hf_dir(bad, source_dir)
    assert not verify_export(saved, bad, PROMPTS, device="cpu").passed
    with pytest.raises(Exception, match="no log-probs for these"):
        verify_export(saved, cand, ["別のプロンプト"], device="cpu")
