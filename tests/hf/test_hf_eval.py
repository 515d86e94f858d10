"""`make eval` end to end on tiny models: results.json / .md / .png, W&B offline, stamps."""

from __future__ import annotations

import json
import math

import pytest

from jpqwen.cli import stage_main
from jpqwen.hf.evaluate import run
from pipeline.eval import parser


def eval_args(work, prompt_files, *extra):
    return [
        "--work-dir",
        str(work.root),
        "--set",
        "eval.max_docs_ja=3",
        "--set",
        "eval.max_docs_en=2",
        "--set",
        "eval.max_new_tokens=6",
        "--set",
        f"eval.prompts_ja={prompt_files['ja']}",
        "--set",
        f"eval.prompts_en={prompt_files['en']}",
        *extra,
    ]


def test_eval_writes_results_for_every_stage(upstream, prompt_files, capsys):
    work = upstream
    assert stage_main("eval", run, parser(), eval_args(work, prompt_files)) == 0
    results = json.loads((work.eval / "results.json").read_text(encoding="utf-8"))
    assert list(results["stages"]) == ["base", "continued", "lora_merged"]
    for name, r in results["stages"].items():
        for lang, docs in (("ja", 3), ("en", 2)):
            b = r[lang]
            assert b["documents"] == docs
            assert b["bits_per_char"] == pytest.approx(b["nll_nats"] / (math.log(2) * b["characters"]))
            # a random model over a 152k vocabulary: about log2(151936) = 17.2 bits per token
            assert 15 < b["bits_per_token"] < 19, (name, lang, b)
        assert [g["prompt"] for g in r["generations"]["ja"]] == ["日本の首都は", "富士山は"]
        assert all(g["new_tokens"] >= 1 for g in r["generations"]["ja"])
    # different weights -> different scores (each stage's own model was loaded)
    assert len({r["ja"]["bits_per_char"] for r in results["stages"].values()}) == 3

    md = (work.eval / "results.md").read_text(encoding="utf-8")
    assert "| Qwen2.5-0.5B (base) |" in md and "| + LoRA (merged) |" in md and "富士山は" in md
    png = (work.eval / "results.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000

    stamp = json.loads((work.stamps / "eval.json").read_text(encoding="utf-8"))
    assert set(stamp["outputs"]) == {"results_json", "results_md", "results_png"}
    assert stamp["metrics"]["base"]["ja"] == results["stages"]["base"]["ja"]["bits_per_char"]
    assert list(work.wandb.rglob("offline-run-*")), "W&B offline run not recorded"
    assert "ja bpc" in capsys.readouterr().out

    # unchanged inputs: nothing is recomputed
    mtime = (work.eval / "results.json").stat().st_mtime_ns
    assert stage_main("eval", run, parser(), eval_args(work, prompt_files)) == 0
    assert (work.eval / "results.json").stat().st_mtime_ns == mtime


def test_eval_without_export_says_what_to_run(work, prompt_files, capsys):
    assert stage_main("eval", run, parser(), eval_args(work, prompt_files)) == 2
    err = capsys.readouterr().err
    assert "stage 'export' has not finished" in err and "make export" in err


def test_bad_prompts_file_is_named(upstream, tmp_path, prompt_files, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text('["ok", ', encoding="utf-8")
    args = eval_args(upstream, {**prompt_files, "ja": bad}, "--set", "eval.wandb=false")
    assert stage_main("eval", run, parser(), args) == 2
    assert f"{bad}:1: not valid JSON" in capsys.readouterr().err
