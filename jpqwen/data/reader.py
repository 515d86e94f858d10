"""Stream .jsonl / .jsonl.gz files as chunks of raw lines.

The main process only decompresses and cuts lines into chunks of about
``chunk_bytes``; workers parse them. Chunking depends only on the input and
``chunk_mb``, never on the number of workers, so the chunk index is a stable
name for resumable work. A corrupt or truncated gzip ends that file: what was
read before the damage is still processed, and the file is reported as
incomplete (the stage then fails naming it).
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from jpqwen.data.sources import InputFile


@dataclass
class Chunk:
    index: int  # position in the whole input: names the shard
    file_index: int
    path: str
    validation: bool
    first_line: int  # 1-based line number of the first line in ``data``
    data: bytes  # whole lines, each ending in b"\n"


@dataclass
class ReadReport:
    bytes_read: int = 0
    incomplete: dict[str, str] = field(default_factory=dict)  # path -> what went wrong


def _open(path: Path):
    if path.name.endswith(".gz"):
        return gzip.open(path, "rb")
    return open(path, "rb")


def iter_chunks(files: list[InputFile], chunk_bytes: int, report: ReadReport) -> Iterator[Chunk]:
    index = 0
    for file_index, inp in enumerate(files):
        buf: list[bytes] = []
        size = 0
        first_line = line_no = 1
        try:
            with _open(inp.path) as fh:
                for line in fh:
                    if not line.endswith(b"\n"):
                        line += b"\n"
                    buf.append(line)
                    size += len(line)
                    line_no += 1
                    report.bytes_read += len(line)
                    if size >= chunk_bytes:
                        yield Chunk(index, file_index, str(inp.path), inp.validation, first_line, b"".join(buf))
                        index += 1
                        buf, size, first_line = [], 0, line_no
        except (EOFError, OSError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
            report.incomplete[str(inp.path)] = (
                f"{type(exc).__name__}: {exc} (after line {line_no - 1}; the lines before it were processed)"
            )
        if buf:
            yield Chunk(index, file_index, str(inp.path), inp.validation, first_line, b"".join(buf))
            index += 1
