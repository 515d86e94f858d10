"""Shared helpers for the data-stage tests: run the real stage, read what it wrote."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jpqwen.cli import stage_main
from jpqwen.paths import WorkDir

SAMPLE_DIR = Path(__file__).resolve().parents[2] / "jpqwen" / "resources" / "sample"


def run_data(work_root: Path, *overrides: str, source: str | None = None, workers: int = 1, extra: tuple = ()) -> int:
    """``python -m pipeline.data`` in-process; returns the exit code."""
    from pipeline.data import parser

    argv = ["--work-dir", str(work_root), "--workers", str(workers), "--set", "data.wandb=false"]
    for o in overrides:
        argv += ["--set", o]
    if source:
        argv += ["--source", source]
    argv += list(extra)
    from jpqwen.data.stage import run

    return stage_main("data", run, parser(), argv)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture(scope="session")
def sample_run(tmp_path_factory, qwen_tokenizer_dir) -> dict:
    """The real stage on the shipped sample (2 workers, every rejected doc listed as an example)."""
    root = tmp_path_factory.mktemp("sample_run")
    rc = run_data(
        root,
        f"data.tokenizer={qwen_tokenizer_dir}",
        "data.examples_per_filter=1000",
        "data.chunk_mb=0.05",
        workers=2,
    )
    assert rc == 0
    work = WorkDir(root)
    stamp = json.loads((work.stamps / "data.json").read_text(encoding="utf-8"))
    card = json.loads((work.data / "data_card.json").read_text(encoding="utf-8"))
    return {"work": work, "stamp": stamp, "card": card, "outputs": stamp["outputs"]}
