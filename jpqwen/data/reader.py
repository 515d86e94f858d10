"""Stream .jsonl / .jsonl.gz files as chunks of raw lines.

The main process only decompresses and cuts lines into chunks of about
``chunk_bytes``; workers parse them. Chunking depends only on the input and
``chunk_mb``, never on the number of workers, so the chunk index is a stable
name for resumable work. A corrupt or truncated gzip ends that file: what was
read before the damage is still processed, and the file is reported as
incomplete (the stage then fails naming it).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from isal import igzip, isal_zlib
from xxhash import xxh3_64_digest

from jpqwen.data.filters import kernels
from jpqwen.data.sources import InputFile
from jpqwen.errors import InputError


@dataclass
class Chunk:
    index: int  # position in the whole input: names the shard
    file_index: int
    path: str
    validation: bool
    first_line: int  # 1-based line number of the first line in ``data``
    data: bytes  # whole lines, each ending in b"\n"
    offset: int | None = None  # where ``data`` starts in the file, when it is those very bytes (plain files)


@dataclass(frozen=True)
class ChunkRef:
    """A chunk of a plain file by place instead of by its bytes: what the main process hands a pass-1
    worker. Sending 8 MB through a pipe cost ~2.5 CPU-ms per MB (1.0 to send, 1.45 to receive);
    reading it back from the page cache ~0.3. ``load`` checks the bytes are still the ones read."""

    index: int
    file_index: int
    path: str
    validation: bool
    first_line: int
    offset: int
    length: int
    digest: bytes  # xxh3-64 of the bytes

    @classmethod
    def of(cls, chunk: Chunk) -> Chunk | ChunkRef:
        """``chunk`` by place where it has one (a plain file), else itself."""
        if chunk.offset is None:
            return chunk
        return cls(
            chunk.index,
            chunk.file_index,
            chunk.path,
            chunk.validation,
            chunk.first_line,
            chunk.offset,
            len(chunk.data),
            xxh3_64_digest(chunk.data),
        )

    def load(self) -> Chunk:
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            data = f.read(self.length)
        if len(data) != self.length or xxh3_64_digest(data) != self.digest:
            raise InputError(
                f"{self.path} changed while it was being read (bytes {self.offset}-{self.offset + self.length}, "
                f"from line {self.first_line})",
                hint="leave the input files alone while `make data` runs, then run it again (finished chunks are kept)",
            )
        return Chunk(self.index, self.file_index, self.path, self.validation, self.first_line, data, self.offset)


@dataclass
class ReadReport:
    bytes_read: int = 0
    incomplete: dict[str, str] = field(default_factory=dict)  # path -> what went wrong


def is_gzip(path: Path) -> bool:
    """A ``.gz`` input: inflated while read, so its chunks have no place in the file."""
    return path.name.endswith(".gz")


def _open(path: Path):
    if is_gzip(path):
        # ISA-L's inflate (python-isal; gzip's API and errors, plus IsalError for bad deflate data):
        # 1.2 ms per MB of text here against zlib's 3.7-4.9, on the main process's critical path
        return igzip.open(path, "rb")
    return open(path, "rb")


# what a damaged or cut-short .gz raises while it is read
_DAMAGED = (EOFError, OSError, zlib.error, isal_zlib.error)


# bytes per read: read1 returns what one raw read (or one decompressor step) gave, so an error
# later in the file never takes back data that was already returned
_READ = 1 << 22
# from a .gz: ISA-L inflates up to that much per call, and a call that meets damage returns nothing,
# so smaller steps keep more of the lines before the damage (same speed: 1.18 ms per MB either way)
_READ_GZ = 1 << 17


def iter_chunks(files: list[InputFile], chunk_bytes: int, report: ReadReport) -> Iterator[Chunk]:
    """Chunks of whole lines: each ends at the first line break at or past ``chunk_bytes`` from
    its start (the end of a line that brings it to ``chunk_bytes``), a file's last one at its end.
    A last line without a line break gets one. Read in blocks and cut at line breaks: no Python
    object per line. On damage, the line the damage cut short is dropped (it is no document)."""
    index = 0
    for file_index, inp in enumerate(files):
        for chunk in _file_chunks(inp, file_index, index, max(chunk_bytes - 1, 0), report):
            index = chunk.index + 1
            yield chunk


def _file_chunks(inp: InputFile, file_index: int, index: int, limit: int, report: ReadReport) -> Iterator[Chunk]:
    """The chunks of one file, numbered from ``index``; ``limit``: the offset in a chunk from which
    its closing line break is searched."""
    pieces: list[memoryview] = []  # the chunk so far: views of the blocks read (no copy until it is cut)
    size = 0
    first_line = 1
    plain = not is_gzip(inp.path)
    consumed = 0  # bytes of a plain file in the chunks before
    added_newline = False  # the file's last line had none: the last chunk is no longer the file's bytes

    def take(tail: memoryview | bytes = b"") -> Chunk:
        nonlocal index, first_line, pieces, size, consumed
        data = b"".join([*pieces, tail])
        pieces, size = [], 0
        offset = consumed if plain and not added_newline else None
        consumed += len(data)
        chunk = Chunk(index, file_index, str(inp.path), inp.validation, first_line, data, offset)
        index += 1
        first_line += int(kernels().count_newlines(np.frombuffer(data, dtype=np.uint8)))
        report.bytes_read += len(data)
        return chunk

    try:
        with _open(inp.path) as fh:
            step = _READ if plain else min(_READ, _READ_GZ)
            while block := fh.read1(step):
                view = memoryview(block)
                while view:
                    end = block.find(b"\n", len(block) - len(view) + max(limit - size, 0))
                    if end < 0:
                        pieces.append(view)
                        size += len(view)
                        break
                    cut = end + 1 - (len(block) - len(view))
                    yield take(view[:cut])
                    view = view[cut:]
        if size and pieces[-1][-1] != 0x0A:
            pieces.append(memoryview(b"\n"))
            added_newline = True
    except _DAMAGED as exc:  # gzip.BadGzipFile (which igzip raises too) is an OSError
        # the line the damage cut short is no document
        while pieces and (keep := bytes(pieces[-1]).rfind(b"\n")) < 0:
            pieces.pop()
        if pieces:
            pieces[-1] = pieces[-1][: keep + 1]
        size = sum(len(p) for p in pieces)
        lines = first_line - 1 + sum(bytes(p).count(b"\n") for p in pieces)
        report.incomplete[str(inp.path)] = (
            f"{type(exc).__name__}: {exc} (after line {lines}; the lines before it were processed)"
        )
    if size:
        yield take()
