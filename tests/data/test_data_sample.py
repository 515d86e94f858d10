"""The real stage on the shipped sample: every planted defect is caught where it should be."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from tests.data.conftest import SAMPLE_DIR, read_jsonl, run_data

DEFECTS = SAMPLE_DIR / "ja_wiki" / "defects.jsonl"

# line in defects.jsonl -> what must happen to it (DEFECTS.md is the prose version)
EXPECTED = {
    1: "kept",
    2: "duplicate_exact",
    3: "duplicate_exact",
    4: "duplicate_near",
    5: "kept",
    6: "hiragana_ratio",
    7: "hiragana_ratio",
    8: "japanese_ratio",
    9: "doc_length",
    10: "japanese_ratio",
    11: "dup_lines",
    12: "quarantined",
    13: "quarantined",
    14: "quarantined",
    15: "katakana_ratio",
    16: "url_ratio",
    17: "quarantined",
    19: "top_4gram",
}


def _fate_of_defect_lines(sample_run) -> dict[int, str]:
    """For each line of defects.jsonl that left, the stage that removed it (from the stage's own outputs)."""
    fate: dict[int, str] = {}
    card_md = Path(sample_run["outputs"]["data_card_md"]).read_text(encoding="utf-8")
    assert card_md.startswith("# Data card")
    for q in read_jsonl(sample_run["outputs"]["quarantine_jsonl"]):
        if q["file"] == str(DEFECTS):
            fate[q["line"]] = "quarantined"
    examples = _card_examples(sample_run)
    for reason, exs in examples.items():
        for e in exs:
            if e["file"] == str(DEFECTS):
                fate[e["line"]] = reason
    return fate


def _card_examples(sample_run) -> dict[str, list[dict]]:
    # the card JSON keeps counts; the per-document examples are in the markdown and in the shards.
    # The stage keeps its examples in data_card.json under "examples" for exactly this purpose.
    return sample_run["card"]["examples"]


def test_every_planted_defect_is_caught_by_its_stage(sample_run):
    fate = _fate_of_defect_lines(sample_run)
    for line, want in EXPECTED.items():
        got = fate.get(line, "kept")
        assert got == want, f"defects.jsonl:{line}: expected {want}, got {got}"


def test_duplicates_point_at_the_first_copy(sample_run):
    dups = sample_run["card"]["examples"]
    for kind in ("duplicate_exact", "duplicate_near"):
        mine = [e for e in dups[kind] if e["file"] == str(DEFECTS)]
        assert mine and all(e["duplicate_of"] == {"file": str(DEFECTS), "line": 1} for e in mine)


def test_quarantine_names_file_line_and_reason(sample_run):
    rows = {q["line"]: q for q in read_jsonl(sample_run["outputs"]["quarantine_jsonl"])}
    assert "malformed JSON" in rows[12]["reason"]
    assert rows[13]["reason"] == "no 'text' field"
    assert rows[14]["reason"].startswith("invalid UTF-8 at byte")
    assert "not a string" in rows[17]["reason"]


def test_every_document_counted_exactly_once(sample_run):
    card = sample_run["card"]["japanese"]
    n_lines = 0
    for path in sorted((SAMPLE_DIR / "ja_wiki").glob("*.jsonl")):
        n_lines += sum(1 for line in path.read_bytes().split(b"\n") if line.strip())
    counted = (
        card["documents_kept"]
        + sum(card["rejected_by_filter"].values())
        + card["duplicates_exact"]
        + card["duplicates_near"]
        + card["quarantined"]
    )
    assert card["documents_in"] == n_lines == counted
    assert card["documents_kept"] == card["documents"]["train"] + card["documents"]["validation"]
    assert card["blank_lines_skipped"] == 1


def test_card_fields_and_outputs(sample_run):
    card, out = sample_run["card"], sample_run["outputs"]
    for key in (
        "documents_in",
        "documents_kept",
        "rejected_by_filter",
        "duplicates_exact",
        "duplicates_near",
        "quarantined",
        "tokens",
        "bytes_in",
        "seconds",
        "chars_per_token",
    ):
        assert key in card, key
    assert card["tokens"]["train"] > 10_000 and card["tokens"]["validation"] > 0
    assert 1.0 < card["chars_per_token"] < 3.0
    for key in ("train_prefix", "validation_prefix", "en_replay_prefix"):
        assert os.path.getsize(out[key] + ".bin") > 0 and os.path.isfile(out[key] + ".idx")
    for key in ("validation_jsonl", "en_validation_jsonl", "data_card", "tokenizer"):
        assert os.path.isabs(out[key]) and os.path.exists(out[key])
    png = Path(out["data_card_png"]).read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    val = read_jsonl(out["validation_jsonl"])
    assert len(val) == card["japanese"]["documents"]["validation"] and all(v["text"] and "id" in v for v in val)
    en_val = read_jsonl(out["en_validation_jsonl"])
    assert len(en_val) == card["english"]["documents"]["validation"] > 0
    assert card["english"]["documents"]["train"] > 0


def test_rerun_with_same_inputs_does_nothing(sample_run, qwen_tokenizer_dir):
    work = sample_run["work"]
    stamp = work.stamps / "data.json"
    before = {p: p.stat().st_mtime_ns for p in work.data.iterdir()}
    record = stamp.read_text(encoding="utf-8")
    time.sleep(0.01)
    t0 = time.time()
    rc = run_data(
        work.root,
        f"data.tokenizer={qwen_tokenizer_dir}",
        "data.examples_per_filter=1000",
        "data.chunk_mb=0.05",
        workers=1,  # the worker count is not part of the outputs' identity
    )
    assert rc == 0
    assert time.time() - t0 < 30
    assert {p: p.stat().st_mtime_ns for p in work.data.iterdir()} == before
    assert stamp.read_text(encoding="utf-8") == record


def test_stamp_records_config_and_fingerprint(sample_run):
    stamp = sample_run["stamp"]
    assert stamp["stage"] == "data" and len(stamp["fingerprint"]) == 64
    assert stamp["config"]["data"]["filters"]["min_chars"] == 400
    assert json.dumps(stamp).count(str(DEFECTS)) >= 1  # inputs are listed


def test_data_card_is_logged_to_wandb_offline(sample_run, tmp_path):
    """The card goes to W&B through jpqwen.monitoring; without a key it is an offline run under WORK_DIR/wandb."""
    from jpqwen.data.config import DataConfig
    from jpqwen.data.stage import _log_wandb
    from jpqwen.paths import WorkDir

    work = WorkDir(tmp_path / "w")
    _log_wandb(
        work, {"run": {"name": "t"}}, DataConfig(), sample_run["card"], Path(sample_run["outputs"]["data_card_png"])
    )
    runs = list((work.wandb / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    assert any(p.suffix == ".wandb" for p in runs[0].iterdir())
