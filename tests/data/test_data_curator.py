"""The NeMo Curator executor: our filters inside NeMo Curator, on a real (local) Dask cluster."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd
import pytest

from jpqwen.data.config import FilterConfig, NormalizeConfig
from jpqwen.data.filters import HiraganaRatioFilter, build_filters, first_failure
from jpqwen.data.normalize import normalize_text
from tests.data.conftest import SAMPLE_DIR, run_data


def test_score_filter_runs_our_filter_through_nemo_curator():
    """nemo_curator.ScoreFilter on a DocumentDataset (Dask) keeps exactly what keep_document keeps."""
    import dask.dataframe as dd
    from nemo_curator import ScoreFilter
    from nemo_curator.datasets import DocumentDataset

    texts = [
        "灯台は、船が安全に航海できるように設けられた施設である。",  # plenty of hiragana
        "犬吠埼灯台　千葉県銚子市　1874年初点灯",  # a list row: no hiragana
        "縺薙ｌ縺ｯ譁�ｭ怜喧縺",  # mojibake
        "こけしは、東北地方で生まれた木製の人形である。",
    ]
    df = dd.from_pandas(pd.DataFrame({"id": range(len(texts)), "text": texts}), npartitions=2)
    filt = HiraganaRatioFilter(low=0.2)
    kept = ScoreFilter(filt, text_field="text", score_field="hiragana", score_type=float)(DocumentDataset(df))
    out = kept.df.compute()
    assert out["id"].tolist() == [0, 3]
    assert all(s >= 0.2 for s in out["hiragana"])


def test_every_filter_is_a_curator_document_filter():
    from nemo_curator.filters import DocumentFilter

    for f in build_filters(FilterConfig()):
        assert isinstance(f, DocumentFilter) and f.name == f.reason
        assert isinstance(f.score_document("灯台は、船の安全を守る。"), float)


OUTPUTS = (
    "ja_wiki_train_text_document.bin",
    "ja_wiki_train_text_document.idx",
    "ja_wiki_validation_text_document.bin",
    "ja_wiki_validation_text_document.idx",
    "ja_wiki_en_replay_text_document.bin",
    "validation.jsonl",
    "quarantine.jsonl",
)


def _same_outputs(a: Path, b: Path) -> None:
    for name in OUTPUTS:
        ha = hashlib.sha256((a / "data" / name).read_bytes()).hexdigest()
        hb = hashlib.sha256((b / "data" / name).read_bytes()).hexdigest()
        assert ha == hb, name
    ca = json.loads((a / "data" / "data_card.json").read_text())
    cb = json.loads((b / "data" / "data_card.json").read_text())
    assert cb["executor"] == "curator"
    for key in ("documents_in", "documents_kept", "rejected_by_filter", "duplicates_exact", "quarantined", "examples"):
        assert ca[key] == cb[key], key


def _run_dask(root: Path, tokenizer_dir: Path, workers: int) -> None:
    # the same identity as the sample_run fixture (local executor, 2 workers)
    common = (f"data.tokenizer={tokenizer_dir}", "data.examples_per_filter=1000", "data.chunk_mb=0.05")
    assert run_data(root, *common, workers=workers, extra=("--executor", "dask")) == 0


def test_curator_executor_in_process_dask_worker_gives_identical_outputs(sample_run, tmp_path, qwen_tokenizer_dir):
    _run_dask(tmp_path / "dask", qwen_tokenizer_dir, workers=1)
    _same_outputs(sample_run["work"].root, tmp_path / "dask")


@pytest.mark.slow
def test_curator_executor_on_a_two_process_local_cluster_gives_identical_outputs(
    sample_run, tmp_path, qwen_tokenizer_dir
):
    _run_dask(tmp_path / "dask2", qwen_tokenizer_dir, workers=2)
    _same_outputs(sample_run["work"].root, tmp_path / "dask2")


def test_local_filter_path_agrees_with_scores_one_by_one():
    """first_failure (the local executor) == the first filter whose keep_document says no."""
    filters = build_filters(FilterConfig())
    for path in sorted((SAMPLE_DIR / "ja_wiki").glob("*.jsonl")):
        for raw in Path(path).read_bytes().split(b"\n")[:50]:
            try:
                text = normalize_text(json.loads(raw)["text"], NormalizeConfig())
            except (ValueError, KeyError, TypeError):
                continue
            want = next(
                (
                    (i, f.score_document(text))
                    for i, f in enumerate(filters)
                    if not f.keep_document(f.score_document(text))
                ),
                None,
            )
            assert first_failure(text, filters) == want


def test_document_filters_unpickle_in_a_fresh_process():
    """Dask ships the DocumentFilters to its worker processes by pickle; there the classes are made
    on first use (filters' module __getattr__), with the same thresholds and scores."""
    import pickle
    import subprocess
    import sys

    filters = build_filters(FilterConfig())
    text = "日本語の文章です。" * 60
    script = (
        "import pickle, sys\n"
        "fs = pickle.loads(sys.stdin.buffer.read())\n"
        "from nemo_curator.filters import DocumentFilter\n"
        "assert all(isinstance(f, DocumentFilter) for f in fs)\n"
        f"print([(type(f).__name__, f.args(), f.score_document({text!r})) for f in fs])\n"
    )
    out = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", script],
        input=pickle.dumps(filters),
        capture_output=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr.decode()[-2000:]
    want = [(type(f).__name__, f.args(), f.score_document(text)) for f in filters]
    assert out.stdout.decode().strip() == repr(want)
