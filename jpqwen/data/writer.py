"""Tokens in and out of Megatron indexed datasets (megatron-core's ``IndexedDatasetBuilder``).

Pass 1's workers tokenize the candidates of each chunk into a part (``shards.write_shard``:
one document = its tokens + ``<|endoftext|>``, one sequence per document, int32 ids since the
vocabulary exceeds 65,500). A document the tokenizer fails on (an exception, or a Rust panic,
which is a BaseException) is quarantined with the reason and its file:line instead of stopping
the run. After the global dedup, the main process merges the parts in input order, copying the
documents each split keeps (:func:`merge_shards`), so the result is byte-identical whatever
the number of workers. Parts are kept until the stage finishes so an interrupted run resumes.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from jpqwen.data.imports import import_module
from jpqwen.data.tokenizer import QwenTokenizer

SPLITS = ("train", "validation")
_TOKENIZERS: dict[tuple[str, str, bool], QwenTokenizer] = {}
# what a tokenizer failure must never swallow: the user's Ctrl-C and an orderly exit
_PASS_THROUGH = (KeyboardInterrupt, SystemExit, GeneratorExit)


def indexed_dataset():
    """megatron.core.datasets.indexed_dataset, without megatron-core's package __init__ (see imports.py)."""
    # parallel_state first, as megatron.core's __init__ does: megatron.core.utils and it import each other
    return import_module("megatron.core.parallel_state", "megatron.core.datasets.indexed_dataset")


def get_tokenizer(tokenizer_dir: str, backend: str, nfc_input: bool = False) -> QwenTokenizer:
    """This process's tokenizer (``nfc_input``: see QwenTokenizer). One inherited through a fork is
    used where it is ``fork_safe`` (every backend, fastokens with its default single BPE thread: the
    workers share the parent's, built once); otherwise (fastokens with a Rust thread pool) the
    process builds its own."""
    key = (tokenizer_dir, backend, nfc_input)
    tok = _TOKENIZERS.get(key)
    if tok is None or (tok.pid != os.getpid() and not tok.fork_safe):
        tok = _TOKENIZERS[key] = QwenTokenizer(tokenizer_dir, backend, nfc_input=nfc_input)
    return tok


def encode_all(tok: QwenTokenizer, texts: list[str]) -> tuple[list[np.ndarray], np.ndarray, list[str | None]]:
    """The texts' ids + EOD (int32), back to back in ``pieces``; each text's length (0 for one the
    tokenizer failed on) and why it failed (None when it did not). One batch call first; if
    anything in it fails, one call per text, so only the failing documents are lost."""
    try:
        flat, lengths = tok.encode_documents_flat(texts)
        return [flat], lengths, [None] * len(texts)
    except _PASS_THROUGH:
        raise
    except BaseException:  # noqa: B036 - pyo3's PanicException derives from BaseException only
        pass
    pieces: list[np.ndarray] = []
    lengths = np.zeros(len(texts), dtype=np.int64)
    errors: list[str | None] = []
    for i, text in enumerate(texts):
        try:
            ids = tok.encode_document_array(text)
        except _PASS_THROUGH:
            raise
        except BaseException as exc:  # noqa: B036
            message = " ".join(str(exc).split())[:200]
            errors.append(f"tokenizer ({tok.backend}) failed: {type(exc).__name__}: {message}")
            continue
        pieces.append(ids)
        lengths[i] = ids.size
        errors.append(None)
    return pieces, lengths, errors


def append_documents(builder, pieces: list[np.ndarray], lengths: np.ndarray) -> None:
    """``builder.add_document(doc, [len(doc)])`` for each document in turn, without a Python call
    and two copies per document: the same ``.bin`` bytes and the same index lists (tests compare
    both ways' files byte for byte). ``pieces``: the documents' tokens back to back, cut anywhere
    (one array for all, one per run of documents, or one per document)."""
    total = 0
    for piece in pieces:
        data = np.ascontiguousarray(piece, dtype=builder.dtype)
        builder.data_file.write(memoryview(data).cast("B"))
        total += data.size
    if int(lengths.sum()) != total:
        raise ValueError(f"{total} tokens given for documents of {int(lengths.sum())} in all")
    first = len(builder.sequence_lengths)
    builder.sequence_lengths.extend(lengths.tolist())
    builder.document_indices.extend(range(first + 1, first + 1 + lengths.size))


def merge_shards(
    prefixes: list[Path], selections: list[np.ndarray], final_prefix: Path, progress=None
) -> dict[str, int]:
    """The documents ``selections[k]`` (a boolean mask over its documents) of part ``prefixes[k]``,
    in order, into ``final_prefix``.{bin,idx}, atomically. Returns its documents and tokens."""
    mod = indexed_dataset()
    final_prefix.parent.mkdir(parents=True, exist_ok=True)
    bin_tmp = Path(f"{final_prefix}.bin.tmp")
    idx_tmp = Path(f"{final_prefix}.idx.tmp")
    builder = mod.IndexedDatasetBuilder(str(bin_tmp), dtype=np.int32)
    documents = tokens = 0
    for prefix, sel in zip(prefixes, selections, strict=True):
        pick = np.flatnonzero(sel)
        if pick.size:
            # megatron-core's reader, reading the .bin (one read per run of documents: cheaper than
            # faulting in a memory mapping, then copying from it)
            part = mod.IndexedDataset(str(prefix), mmap=False)
            lengths = part.sequence_lengths.astype(np.int64)
            pointers = part.index.sequence_pointers
            read = part.bin_reader.read
            docs = [
                read(
                    dtype=np.int32,
                    count=int(pointers[b - 1] // 4 + lengths[b - 1] - pointers[a] // 4),
                    offset=int(pointers[a]),
                )
                for a, b in _runs(pick)
            ]
            append_documents(builder, docs, lengths[pick])
            documents += int(pick.size)
            tokens += int(lengths[pick].sum())
            del part, docs, read
        if progress is not None:
            progress(int(pick.size))
    builder.finalize(str(idx_tmp))
    os.replace(bin_tmp, f"{final_prefix}.bin")
    os.replace(idx_tmp, f"{final_prefix}.idx")
    return {"documents": documents, "tokens": tokens}


def _runs(pick: np.ndarray) -> list[tuple[int, int]]:
    """Sorted indices as [a, b) runs of consecutive ones."""
    breaks = np.flatnonzero(np.diff(pick) != 1) + 1
    firsts = np.concatenate(([0], breaks))
    lasts = np.concatenate((breaks, [pick.size]))
    return [(int(pick[f]), int(pick[t - 1]) + 1) for f, t in zip(firsts, lasts, strict=True)]


def concat_selected_lines(paths: list[Path], selections: list[np.ndarray], dest: Path) -> Path:
    """The lines ``selections[k]`` (boolean masks over each file's lines) of ``paths``, in order, into
    ``dest``, atomically."""
    tmp = dest.with_name(dest.name + ".tmp")
    with open(tmp, "wb") as out:
        for path, sel in zip(paths, selections, strict=True):
            if not sel.any():
                continue
            lines = path.read_bytes().splitlines(keepends=True)
            if len(lines) != sel.size:
                raise RuntimeError(f"{path}: {len(lines)} lines, expected {sel.size}")
            out.writelines(line for line, keep in zip(lines, sel.tolist(), strict=True) if keep)
    os.replace(tmp, dest)
    return dest
