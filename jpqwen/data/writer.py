"""Pass 2: tokenize the kept documents of each shard into Megatron parts, then merge.

Workers write one part per (shard, split) with megatron-core's
``IndexedDatasetBuilder`` (one document = its tokens + ``<|endoftext|>``, one
sequence per document, int32 ids since the vocabulary exceeds 65,500). A document
the tokenizer fails on (an exception, or a Rust panic, which is a BaseException) is
quarantined with the reason and its file:line instead of stopping the run. The main
process merges the parts in shard order with ``add_index``, so the result is
byte-identical whatever the number of workers. Part files are kept until the
stage finishes so an interrupted run resumes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from jpqwen.data.imports import import_module
from jpqwen.data.shards import STATUS_CANDIDATE, candidate_texts, load_arrays, load_summary
from jpqwen.data.tokenizer import QwenTokenizer

SPLITS = ("train", "validation")
_TOKENIZERS: dict[tuple[str, str], QwenTokenizer] = {}
# backends whose tokenizer a forked worker may inherit from the parent (no thread pool of their own)
FORK_SAFE_BACKENDS = ("tiktoken", "hf")
# what a tokenizer failure must never swallow: the user's Ctrl-C and an orderly exit
_PASS_THROUGH = (KeyboardInterrupt, SystemExit, GeneratorExit)


def indexed_dataset():
    """megatron.core.datasets.indexed_dataset, without megatron-core's package __init__ (see imports.py)."""
    # parallel_state first, as megatron.core's __init__ does: megatron.core.utils and it import each other
    return import_module("megatron.core.parallel_state", "megatron.core.datasets.indexed_dataset")


def get_tokenizer(tokenizer_dir: str, backend: str) -> QwenTokenizer:
    """This process's tokenizer. One inherited through fork is used only for a fork-safe backend;
    fastokens' Rust thread pool does not survive a fork, so a worker builds its own."""
    key = (tokenizer_dir, backend)
    tok = _TOKENIZERS.get(key)
    if tok is None or (tok.pid != os.getpid() and backend not in FORK_SAFE_BACKENDS):
        tok = _TOKENIZERS[key] = QwenTokenizer(tokenizer_dir, backend)
    return tok


def encode_all(tok: QwenTokenizer, texts: list[str]) -> list[np.ndarray | str]:
    """Each text's ids + EOD (int32), or why the tokenizer failed on it. One batch call first;
    if anything in it fails, one call per text, so only the failing documents are lost."""
    try:
        return list(tok.encode_documents(texts))
    except _PASS_THROUGH:
        raise
    except BaseException:  # noqa: B036 - pyo3's PanicException derives from BaseException only
        pass
    out: list[np.ndarray | str] = []
    for text in texts:
        try:
            out.append(tok.encode_document_array(text))
        except _PASS_THROUGH:
            raise
        except BaseException as exc:  # noqa: B036
            message = " ".join(str(exc).split())[:200]
            out.append(f"tokenizer ({tok.backend}) failed: {type(exc).__name__}: {message}")
    return out


def part_prefix(parts: Path, index: int, split: str) -> Path:
    return parts / f"{index:06d}_{split}"


def part_done(parts: Path, index: int) -> bool:
    return (parts / f"{index:06d}.json").is_file()


def tokenize_shard(
    shards: Path, parts: Path, index: int, keep: np.ndarray, tokenizer_dir: str, backend: str, jsonl_split: str
) -> dict:
    """Tokenize the kept candidates of shard ``index``; write its parts; return token counts and
    the documents the tokenizer failed on (``quarantine``: file, line, reason; ``failed``: their
    candidate indices in the shard)."""
    IndexedDatasetBuilder = indexed_dataset().IndexedDatasetBuilder

    tok = get_tokenizer(tokenizer_dir, backend)
    arrays = load_arrays(shards, index)
    summary = load_summary(shards, index)
    split_of = arrays["cand_split"]
    cand_lines = arrays["line"][arrays["status"] == STATUS_CANDIDATE]
    texts = candidate_texts(shards, index, arrays["cand_offsets"])
    parts.mkdir(parents=True, exist_ok=True)
    builders = {}
    tmp_names = {}
    for s, name in enumerate(SPLITS):
        prefix = part_prefix(parts, index, name)
        tmp_names[s] = (Path(f"{prefix}.bin.tmp"), Path(f"{prefix}.idx.tmp"), prefix)
        builders[s] = IndexedDatasetBuilder(str(tmp_names[s][0]), dtype=np.int32)
    stats = {name: {"documents": 0, "tokens": 0, "chars": 0} for name in SPLITS}
    quarantine: list[dict] = []
    failed: list[int] = []
    jsonl_lines: list[str] = []
    want_jsonl = SPLITS.index(jsonl_split)
    kept = [i for i in range(len(texts)) if keep[i]]
    for i, ids in zip(kept, encode_all(tok, [texts[i] for i in kept]), strict=True):
        text = texts[i]
        if isinstance(ids, str):
            quarantine.append(
                {"file": summary["file"], "line": int(cand_lines[i]), "reason": ids, "excerpt": text[:80]}
            )
            failed.append(i)
            continue
        s = int(split_of[i])
        builders[s].add_document(ids, [ids.size])
        st = stats[SPLITS[s]]
        st["documents"] += 1
        st["tokens"] += int(ids.size)
        st["chars"] += len(text)
        if s == want_jsonl:
            meta = summary["validation_meta"].get(str(i)) if s == 1 else None
            record = {"text": text, **(json.loads(meta) if meta else {})}
            jsonl_lines.append(json.dumps(record, ensure_ascii=False))
    for s, builder in builders.items():
        bin_tmp, idx_tmp, prefix = tmp_names[s]
        builder.finalize(str(idx_tmp))
        os.replace(bin_tmp, f"{prefix}.bin")
        os.replace(idx_tmp, f"{prefix}.idx")
    jsonl_path = parts / f"{index:06d}_{jsonl_split}.jsonl"
    jsonl_path.write_text("".join(line + "\n" for line in jsonl_lines), encoding="utf-8")
    done = parts / f"{index:06d}.json"
    result = {"splits": stats, "quarantine": quarantine, "failed": failed}
    done.write_text(json.dumps(result), encoding="utf-8")
    return result


def load_part_stats(parts: Path, index: int) -> dict:
    """What tokenize_shard returned for shard ``index``: {"splits", "quarantine", "failed"}."""
    return json.loads((parts / f"{index:06d}.json").read_text(encoding="utf-8"))


def merge_parts(prefixes: list[Path], final_prefix: Path) -> Path:
    """Concatenate parts (in the given order) into ``final_prefix``.{bin,idx}, atomically."""
    IndexedDatasetBuilder = indexed_dataset().IndexedDatasetBuilder

    final_prefix.parent.mkdir(parents=True, exist_ok=True)
    bin_tmp = Path(f"{final_prefix}.bin.tmp")
    idx_tmp = Path(f"{final_prefix}.idx.tmp")
    builder = IndexedDatasetBuilder(str(bin_tmp), dtype=np.int32)
    for prefix in prefixes:
        builder.add_index(str(prefix))
    builder.finalize(str(idx_tmp))
    os.replace(bin_tmp, f"{final_prefix}.bin")
    os.replace(idx_tmp, f"{final_prefix}.idx")
    return final_prefix


def concat_files(paths: list[Path], dest: Path) -> Path:
    tmp = dest.with_name(dest.name + ".tmp")
    with open(tmp, "wb") as out:
        for p in paths:
            with open(p, "rb") as f:
                while block := f.read(1 << 20):
                    out.write(block)
    os.replace(tmp, dest)
    return dest
