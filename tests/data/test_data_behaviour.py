"""Stage behaviour: byte-identical outputs, resume after an interruption, broken gzip, bad sources."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import json
import shutil
from pathlib import Path

import pytest

from tests.data.conftest import SAMPLE_DIR, read_jsonl, run_data

OUTPUT_FILES = [
    "ja_wiki_train_text_document.bin",
    "ja_wiki_train_text_document.idx",
    "ja_wiki_validation_text_document.bin",
    "ja_wiki_validation_text_document.idx",
    "ja_wiki_en_replay_text_document.bin",
    "ja_wiki_en_replay_text_document.idx",
    "validation.jsonl",
    "en_validation.jsonl",
    "quarantine.jsonl",
]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """The sample as a mix of .jsonl and .jsonl.gz files."""
    d = tmp_path_factory.mktemp("corpus")
    for i, path in enumerate(sorted((SAMPLE_DIR / "ja_wiki").glob("*.jsonl"))):
        if i % 2 == 0:
            (d / (path.name + ".gz")).write_bytes(gzip.compress(path.read_bytes(), mtime=0))
        else:
            shutil.copyfile(path, d / path.name)
    return d


def _digests(work_root: Path) -> dict[str, str]:
    return {name: hashlib.sha256((work_root / "data" / name).read_bytes()).hexdigest() for name in OUTPUT_FILES}


def test_outputs_byte_identical_across_runs_and_worker_counts(corpus, tmp_path, qwen_tokenizer_dir):
    common = (f"data.tokenizer={qwen_tokenizer_dir}", "data.chunk_mb=0.03")
    runs = {}
    for name, workers, backend in (
        ("one", 1, "fastokens"),
        ("two", 2, "fastokens"),
        ("two_again", 2, "fastokens"),
        ("tiktoken", 2, "tiktoken"),
        ("hf", 1, "hf"),
    ):
        rc = run_data(
            tmp_path / name, *common, f"data.tokenizer_backend={backend}", source=str(corpus), workers=workers
        )
        assert rc == 0
        runs[name] = _digests(tmp_path / name)
    assert runs["one"] == runs["two"] == runs["two_again"]
    assert runs["tiktoken"] == runs["hf"] == runs["one"]  # every backend writes the same bytes
    chunks = __import__("json").loads((tmp_path / "one" / "data" / "data_card.json").read_text())["japanese"]["chunks"]
    assert chunks >= 6  # the corpus really was cut into several parts merged in order


def test_tokenizer_built_once_per_process_for_both_corpora(corpus, tmp_path, qwen_tokenizer_dir, monkeypatch):
    """Pass 1 of the Japanese and the English corpus share one pool. With fastokens' default single
    BPE thread the main process builds the tokenizer once and the forked workers use it; with a
    thread pool (FASTOKENS_BPE_THREADS=2), which a fork cannot carry, each worker builds its own,
    once for both corpora, and the parent none. The real tokenizer, only its construction recorded
    (pid per build)."""
    import gc
    import os

    from jpqwen.data import writer
    from jpqwen.data.tokenizer import QwenTokenizer

    log = tmp_path / "builds.txt"

    class Recorded(QwenTokenizer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            with open(log, "a", encoding="utf-8") as f:
                f.write(f"{os.getpid()}\n")

    monkeypatch.setattr(writer, "QwenTokenizer", Recorded)
    common = (f"data.tokenizer={qwen_tokenizer_dir}", "data.chunk_mb=0.03", "data.tokenizer_backend=fastokens")
    outputs = {}
    for workers, threads in ((1, "1"), (2, "1"), (2, "2")):
        monkeypatch.setenv("FASTOKENS_BPE_THREADS", threads)
        monkeypatch.setattr(writer, "_TOKENIZERS", {})
        log.write_text("", encoding="utf-8")
        work = tmp_path / f"w{workers}t{threads}"
        assert run_data(work, *common, source=str(corpus), workers=workers) == 0
        card = json.loads((work / "data" / "data_card.json").read_text(encoding="utf-8"))
        assert card["english"]["documents"]["train"] > 0  # the English corpus was tokenized too
        assert card["japanese"]["chunks"] >= 2  # (so the pool really ran)
        pids = log.read_text(encoding="utf-8").split()
        if threads == "1":
            assert pids == [str(os.getpid())]
        else:
            assert 1 <= len(pids) <= 2 and len(set(pids)) == len(pids) and str(os.getpid()) not in pids
        outputs[workers, threads] = {p.name: p.read_bytes() for p in sorted((work / "data").glob("*.bin"))}
        assert gc.isenabled()  # the collector is paused only while pass 1 loads (corpus.cyclic_gc_paused)
    assert outputs[1, "1"] == outputs[2, "1"] == outputs[2, "2"]  # the same tokens however built


def test_interrupted_run_resumes_from_finished_shards(corpus, tmp_path, qwen_tokenizer_dir, monkeypatch):
    import jpqwen.data.corpus as corpus_mod

    common = (f"data.tokenizer={qwen_tokenizer_dir}", "data.chunk_mb=0.03")
    real = corpus_mod.process_chunk
    seen: list[int] = []

    def interrupted(chunk, profile, *args):
        if chunk.index == 3:
            raise KeyboardInterrupt  # what Ctrl-C does mid-run
        seen.append(chunk.index)
        return real(chunk, profile, *args)

    monkeypatch.setattr(corpus_mod, "process_chunk", interrupted)
    assert run_data(tmp_path / "w", *common, source=str(corpus), workers=1) == 130
    assert seen == [0, 1, 2]
    assert not (tmp_path / "w" / "stamps" / "data.json").exists()

    seen.clear()

    def counted(chunk, profile, *args):
        if profile.name == "ja":
            seen.append(chunk.index)
        return real(chunk, profile, *args)

    monkeypatch.setattr(corpus_mod, "process_chunk", counted)
    assert run_data(tmp_path / "w", *common, source=str(corpus), workers=1) == 0
    assert seen and min(seen) == 3  # Japanese chunks 0-2 were not processed again
    assert run_data(tmp_path / "ref", *common, source=str(corpus), workers=1) == 0
    assert _digests(tmp_path / "w") == _digests(tmp_path / "ref")
    assert not (tmp_path / "w" / "data" / ".cache").exists()  # work files go once the stage is done


@pytest.mark.parametrize(("damage", "workers"), [("truncated", 1), ("corrupt", 1), ("corrupt", 2)])
def test_broken_gzip_fails_naming_the_file(corpus, tmp_path, qwen_tokenizer_dir, capsys, damage, workers):
    src = tmp_path / "src"
    shutil.copytree(corpus, src)
    gz = sorted(src.glob("*.gz"))[0]
    blob = gz.read_bytes()
    if damage == "truncated":
        gz.write_bytes(blob[: len(blob) * 2 // 3])
    else:
        mid = len(blob) // 2
        gz.write_bytes(blob[:mid] + bytes(b ^ 0x5A for b in blob[mid : mid + 64]) + blob[mid + 64 :])
    rc = run_data(
        tmp_path / "w", f"data.tokenizer={qwen_tokenizer_dir}", "data.chunk_mb=0.03", source=str(src), workers=workers
    )
    err = capsys.readouterr().err
    assert rc != 0
    assert str(gz) in err and "incomplete" in err
    assert not (tmp_path / "w" / "stamps" / "data.json").exists()
    assert not (tmp_path / "w" / "data" / "ja_wiki_train_text_document.bin").exists()


def test_source_matching_nothing_is_a_clear_error(tmp_path, capsys):
    rc = run_data(tmp_path / "w", source=str(tmp_path / "nothing" / "*.jsonl.gz"))
    assert rc == 2
    assert "matches no .jsonl or .jsonl.gz file" in capsys.readouterr().err


def test_unknown_config_key_names_the_section(tmp_path, capsys):
    rc = run_data(tmp_path / "w", "data.filters.min_charz=3")
    assert rc == 2 and "min_charz" in capsys.readouterr().err


def test_validation_file_becomes_the_validation_split(tmp_path, qwen_tokenizer_dir):
    src = tmp_path / "src"
    src.mkdir()
    shutil.copyfile(SAMPLE_DIR / "ja_wiki" / "clean_a.jsonl", src / "train_0.jsonl")
    shutil.copyfile(SAMPLE_DIR / "ja_wiki" / "clean_b.jsonl", src / "validation_0.jsonl")
    # the validation file is read first; a train copy of a validation document is the duplicate
    lines = (SAMPLE_DIR / "ja_wiki" / "clean_b.jsonl").read_text(encoding="utf-8").splitlines()
    with open(src / "train_0.jsonl", "a", encoding="utf-8") as f:
        f.write(lines[0] + "\n")
    assert run_data(tmp_path / "w", f"data.tokenizer={qwen_tokenizer_dir}", source=str(src)) == 0
    card = __import__("json").loads((tmp_path / "w" / "data" / "data_card.json").read_text())
    ja = card["japanese"]
    assert card["validation_files"] == [str(src / "validation_0.jsonl")]
    val = read_jsonl(tmp_path / "w" / "data" / "validation.jsonl")
    # no hash split on top of a validation file: every validation doc comes from it, and most of it is there
    assert len(val) == ja["documents"]["validation"] > 0.9 * len(lines)
    assert all(v["id"].startswith("b-") for v in val)
    dup = card["examples"]["duplicate_exact"][0]
    assert dup["file"].endswith("train_0.jsonl") and dup["duplicate_of"]["file"].endswith("validation_0.jsonl")


def test_nothing_left_to_train_on_is_an_error_with_the_card(tmp_path, qwen_tokenizer_dir, capsys):
    src = tmp_path / "only_defects.jsonl"
    src.write_bytes((SAMPLE_DIR / "ja_wiki" / "defects.jsonl").read_bytes())
    rc = run_data(
        tmp_path / "w", f"data.tokenizer={qwen_tokenizer_dir}", "data.filters.min_chars=100000", source=str(src)
    )
    assert rc == 2 and "no Japanese document survived" in capsys.readouterr().err
    assert (tmp_path / "w" / "data" / "data_card.md").is_file()
    assert not (tmp_path / "w" / "stamps" / "data.json").exists()


def test_a_document_the_tokenizer_fails_on_is_quarantined_naming_file_and_line(tmp_path, qwen_tokenizer_dir, caplog):
    """tiktoken's regex runs out of stack on ~1,000,000 spaces in a row (spaces kept: collapse_spaces off,
    filters off). The run goes on; that document is quarantined with its file:line, counted once, in a
    forked worker as in-process. fastokens (the default) encodes it."""
    from jpqwen.data.config import FilterConfig

    src = tmp_path / "src"
    src.mkdir()
    lines = (SAMPLE_DIR / "ja_wiki" / "clean_a.jsonl").read_text(encoding="utf-8").splitlines()[:6]
    big = json.dumps({"id": "spaces", "text": "日本語の文章。" + " " * 1_000_000 + "ここで終わる。"})
    lines.insert(3, big)
    (src / "part.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    off = [f"data.filters.{f.name}=null" for f in dataclasses.fields(FilterConfig)]
    common = (
        f"data.tokenizer={qwen_tokenizer_dir}",
        "data.normalize.collapse_spaces=false",
        "data.chunk_mb=0.001",
        *off,
    )
    cards = {}
    for backend, workers in (("tiktoken", 2), ("tiktoken", 1), ("fastokens", 2)):
        root = tmp_path / f"{backend}_{workers}"
        rc = run_data(root, *common, f"data.tokenizer_backend={backend}", source=str(src / "*.jsonl"), workers=workers)
        assert rc == 0
        card = json.loads((root / "data" / "data_card.json").read_text(encoding="utf-8"))
        ja = card["japanese"]
        assert ja["documents_in"] == 7
        counted = ja["documents_kept"] + sum(ja["rejected_by_filter"].values()) + ja["quarantined"]
        assert counted + ja["duplicates_exact"] + ja["duplicates_near"] == 7
        assert ja["documents"]["train"] + ja["documents"]["validation"] == ja["documents_kept"]
        cards[(backend, workers)] = (ja, read_jsonl(root / "data" / "quarantine.jsonl"))
    for workers in (1, 2):
        ja, quarantine = cards[("tiktoken", workers)]
        assert ja["quarantined"] == 1 and len(quarantine) == 1
        q = quarantine[0]
        assert q["file"].endswith("part.jsonl") and q["line"] == 4
        assert "tokenizer (tiktoken) failed" in q["reason"] and "stack" in q["reason"]
    assert "ja: the tokenizer failed on 1 document(s)" in caplog.text
    ja, quarantine = cards[("fastokens", 2)]
    assert ja["quarantined"] == 0 and quarantine == []
    assert ja["documents_kept"] == cards[("tiktoken", 2)][0]["documents_kept"] + 1


def test_cyclic_gc_paused_restores_the_collector():
    import gc

    from jpqwen.data.corpus import cyclic_gc_paused

    assert gc.isenabled()
    with cyclic_gc_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()  # a caller that had it off keeps it off
    try:
        with cyclic_gc_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
    with pytest.raises(KeyError), cyclic_gc_paused():
        raise KeyError("stop")
    assert gc.isenabled()
