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

import errno
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
    _index_documents(builder, lengths)


def _index_documents(builder, lengths: np.ndarray) -> None:
    """What ``add_document(doc, [len(doc)])`` adds to the builder's index lists, for each length."""
    first = len(builder.sequence_lengths)
    builder.sequence_lengths.extend(lengths.tolist())
    builder.document_indices.extend(range(first + 1, first + 1 + lengths.size))


# copy_file_range's "not here" answers (another file system, an old kernel, a file system that
# does not implement it): the merge then reads the runs and writes them
_NO_KERNEL_COPY = {errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL, errno.EPERM}


def append_byte_ranges(builder, src: Path, ranges: list[tuple[int, int]], lengths: np.ndarray) -> bool:
    """Append the ``(offset, nbytes)`` ranges of the file ``src`` to the builder's ``.bin``, in the
    kernel (``os.copy_file_range``: one copy, page cache to page cache, instead of a read into a
    buffer and a write from it), and index them as the documents of ``lengths``. False where the
    system does not offer it (not Linux, another file system, an old kernel): nothing indexed, the ``.bin``'s position back where it
    was, for the caller to write the same ranges itself."""
    nbytes = sum(n for _, n in ranges)
    if nbytes != int(lengths.sum()) * np.dtype(builder.dtype).itemsize:
        raise ValueError(f"{src}: {nbytes} bytes given for documents of {int(lengths.sum())} tokens in all")
    copy = getattr(os, "copy_file_range", None)  # (Linux only)
    if copy is None:
        return False
    out = builder.data_file
    out.flush()
    fd = out.fileno()
    start = os.lseek(fd, 0, os.SEEK_CUR)
    try:
        with open(src, "rb") as f:
            for offset, count in ranges:
                while count > 0:
                    n = copy(f.fileno(), fd, count, offset)
                    if n == 0:
                        raise OSError(errno.EIO, f"{src} ends before byte {offset + count} (a truncated part?)")
                    offset += n
                    count -= n
    except OSError as exc:
        if exc.errno not in _NO_KERNEL_COPY:
            raise
        out.seek(start)  # (the caller writes these same ranges over whatever part of them was copied)
        return False
    out.seek(0, os.SEEK_END)  # the buffered writer's position again (the copy moved the file's)
    _index_documents(builder, lengths)
    return True


def merge_shards(
    prefixes: list[Path],
    selections: list[np.ndarray],
    final_prefix: Path,
    progress=None,
    in_kernel: bool = True,
) -> dict[str, int]:
    """The documents ``selections[k]`` (a boolean mask over its documents) of part ``prefixes[k]``,
    in order, into ``final_prefix``.{bin,idx}, atomically. Returns its documents and tokens.
    ``in_kernel``: copy the parts' bytes with :func:`append_byte_ranges` where the system offers
    it (0.28-0.33 CPU-s per 800 MB against 0.23-0.98 read and written, measured here); False: read
    and write them (the same bytes; tests compare the two)."""
    mod = indexed_dataset()
    final_prefix.parent.mkdir(parents=True, exist_ok=True)
    bin_tmp = Path(f"{final_prefix}.bin.tmp")
    idx_tmp = Path(f"{final_prefix}.idx.tmp")
    builder = mod.IndexedDatasetBuilder(str(bin_tmp), dtype=np.int32)
    documents = tokens = 0
    for prefix, sel in zip(prefixes, selections, strict=True):
        pick = np.flatnonzero(sel)
        if pick.size:
            # megatron-core's reader for the part's index; its .bin copied by runs of documents
            part = mod.IndexedDataset(str(prefix), mmap=False)
            lengths = part.sequence_lengths.astype(np.int64)
            pointers = part.index.sequence_pointers
            ranges = [
                (int(pointers[a]), int(pointers[b - 1] + 4 * lengths[b - 1] - pointers[a])) for a, b in _runs(pick)
            ]
            if not (in_kernel and append_byte_ranges(builder, Path(f"{prefix}.bin"), ranges, lengths[pick])):
                in_kernel = False  # (not offered here: read and write from now on)
                read = part.bin_reader.read
                docs = [read(dtype=np.int32, count=n // 4, offset=offset) for offset, n in ranges]
                append_documents(builder, docs, lengths[pick])
                del docs, read
            documents += int(pick.size)
            tokens += int(lengths[pick].sum())
            del part
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
