"""The reader's chunks: whole lines, cut where the chunk size says, nothing lost or doubled."""

from __future__ import annotations

import gzip
import random

import pytest

from jpqwen.data import reader
from jpqwen.data.reader import ReadReport, iter_chunks
from jpqwen.data.sources import InputFile
from jpqwen.errors import InputError


def _lines(rng: random.Random, count: int) -> list[bytes]:
    return [("あ" * rng.randint(0, 900) + "x" * rng.randint(0, 3)).encode() for _ in range(count)]


def _expected(lines: list[bytes], chunk_bytes: int) -> list[tuple[int, bytes]]:
    """(first line, data) of each chunk, by the definition: lines accumulate until the chunk
    holds at least ``chunk_bytes``."""
    out, buf, first = [], [], 1
    for i, line in enumerate(lines, start=1):
        buf.append(line + b"\n")
        if sum(map(len, buf)) >= chunk_bytes:
            out.append((first, b"".join(buf)))
            buf, first = [], i + 1
    if buf:
        out.append((first, b"".join(buf)))
    return out


@pytest.mark.parametrize("chunk_bytes", [1, 700, 4096, 10**7])
@pytest.mark.parametrize("gz", [False, True])
def test_chunks_are_whole_lines_cut_at_the_chunk_size(tmp_path, monkeypatch, chunk_bytes, gz):
    monkeypatch.setattr(reader, "_READ", 1000)  # blocks far smaller than lines and chunks: every cut case
    rng = random.Random(chunk_bytes)
    files, expected = [], []
    for k, trailing_newline in enumerate([True, False, True]):
        lines = _lines(rng, 40 if k != 2 else 0)
        blob = b"\n".join(lines) + (b"\n" if trailing_newline and lines else b"")
        path = tmp_path / (f"f{k}.jsonl.gz" if gz else f"f{k}.jsonl")
        path.write_bytes(gzip.compress(blob) if gz else blob)
        files.append(InputFile(path, validation=k == 1))
        expected += [(k, first, data) for first, data in _expected(lines, chunk_bytes)]
    report = ReadReport()
    chunks = list(iter_chunks(files, chunk_bytes, report))
    assert [(c.file_index, c.first_line, c.data) for c in chunks] == expected
    assert [c.index for c in chunks] == list(range(len(chunks)))
    assert all(c.validation == (c.file_index == 1) for c in chunks)
    assert report.bytes_read == sum(len(c.data) for c in chunks) and not report.incomplete


def test_damaged_gzip_keeps_the_whole_lines_before_the_damage(tmp_path):
    lines = _lines(random.Random(7), 400)
    blob = gzip.compress(b"".join(line + b"\n" for line in lines), compresslevel=0)
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(blob[: len(blob) // 2])
    report = ReadReport()
    chunks = list(iter_chunks([InputFile(path, validation=False)], 5000, report))
    data = b"".join(c.data for c in chunks)
    kept = data.count(b"\n")
    assert 0 < kept < len(lines)
    assert data == b"".join(line + b"\n" for line in lines[:kept])  # no partial line
    assert f"after line {kept};" in report.incomplete[str(path)]


def test_any_damage_inside_a_gzip_stream_marks_the_file_incomplete(tmp_path):
    """Bytes flipped anywhere inside the compressed data: the reader (ISA-L's inflate) either hits
    bad deflate data (IsalError, not an OSError) or a CRC mismatch at the end; either way no exception
    escapes and the file is reported incomplete (the stage then fails naming it)."""
    rng = random.Random(11)
    lines = _lines(rng, 3000)
    blob = gzip.compress(b"".join(line + b"\n" for line in lines))
    kinds = set()
    for k in range(30):
        damaged = bytearray(blob)
        for _ in range(20):
            i = rng.randrange(20, len(damaged) - 20)
            damaged[i] ^= rng.randrange(1, 256)
        path = tmp_path / f"damaged{k}.jsonl.gz"
        path.write_bytes(bytes(damaged))
        report = ReadReport()
        chunks = list(iter_chunks([InputFile(path, validation=False)], 5000, report))
        assert str(path) in report.incomplete, k
        assert all(c.data.endswith(b"\n") for c in chunks)
        kinds.add(report.incomplete[str(path)].split(":")[0])
    assert {"IsalError", "BadGzipFile"} <= kinds  # both ways a damaged stream shows


@pytest.mark.parametrize("chunk_bytes", [19, 20, 21])
def test_a_line_ending_exactly_at_the_chunk_size_closes_the_chunk(tmp_path, monkeypatch, chunk_bytes):
    monkeypatch.setattr(reader, "_READ", 7)
    lines = [b"%09d" % i for i in range(10)]  # 10 bytes each with its line break
    path = tmp_path / "even.jsonl"
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    chunks = list(iter_chunks([InputFile(path, validation=False)], chunk_bytes, ReadReport()))
    assert [(c.first_line, c.data) for c in chunks] == _expected(lines, chunk_bytes)
    assert len(chunks[0].data) == (20 if chunk_bytes <= 20 else 30)


def test_parse_chunk_counts_blank_lines_and_quarantines_the_rest_by_line():
    """parse_chunk reads each line from a view of the chunk: blank means only bytes.strip()
    whitespace; every other line is a document or quarantined, with its own line number."""
    from jpqwen.data.reader import Chunk
    from jpqwen.data.shards import parse_chunk

    lines = [
        b'{"text": "a", "id": 1}',
        b"",
        b"   ",
        b"\t\r",
        b'  {"text": "b"}',
        b'{"text": 3}',
        b"[1, 2]",
        b'{"x": 1}',
        b"{bad",
        b'\xff\xfe{"text": "c"}',
        b'{"text": "\\u3042"}',
        b"\x0b\x0c",
        b'\x0c{"text": "e"}',
        b'{"text": "d"}\r',
    ]
    parsed, blank = parse_chunk(Chunk(0, 0, "f.jsonl", False, 10, b"\n".join(lines) + b"\n"))
    assert blank == sum(1 for line in lines if not line.strip()) == 4
    got = {p.line: (p.reason, p.text, p.meta) for p in parsed}
    assert set(got) == {10 + i for i, line in enumerate(lines) if line.strip()}
    assert got[10] == (None, "a", {"id": 1}) and got[14] == (None, "b", {}) and got[20] == (None, "あ", {})
    assert got[23] == (None, "d", {})
    assert got[15][0] == "'text' is int, not a string" and got[16][0] == "not a JSON object (got list)"
    assert got[17][0] == "no 'text' field" and got[18][0].startswith("malformed JSON")
    assert got[19][0] == "invalid UTF-8 at byte 0" and got[22][0].startswith("malformed JSON")
    assert [p.excerpt for p in parsed if p.line == 18] == ["{bad"]


def test_plain_file_chunks_know_their_place_and_load_back(tmp_path):
    """A worker gets a plain file's chunk by place (ChunkRef) and reads the very bytes the main process
    read; a .gz chunk and a last chunk whose line break was added have no place and go by value."""
    from jpqwen.data.reader import ChunkRef

    lines = _lines(random.Random(3), 300)
    plain = tmp_path / "a.jsonl"
    plain.write_bytes(b"".join(line + b"\n" for line in lines)[:-1])  # the last line without its \n
    gz = tmp_path / "b.jsonl.gz"
    gz.write_bytes(gzip.compress(b"".join(line + b"\n" for line in lines)))
    files = [InputFile(plain, validation=False), InputFile(gz, validation=False)]
    chunks = list(iter_chunks(files, 20_000, ReadReport()))
    raw = plain.read_bytes()
    mine = [c for c in chunks if c.path == str(plain)]
    assert len(mine) > 5 and mine[-1].offset is None and mine[-1].data.endswith(b"\n")
    for c in mine[:-1]:
        assert raw[c.offset : c.offset + len(c.data)] == c.data
        ref = ChunkRef.of(c)
        assert isinstance(ref, ChunkRef) and ref.load() == c
    assert all(c.offset is None and ChunkRef.of(c) is c for c in chunks if c.path == str(gz))
    ref = ChunkRef.of(mine[1])

    def flipped(at: int) -> bytes:
        return raw[:at] + bytes([raw[at] ^ 1]) + raw[at + 1 :]

    plain.write_bytes(flipped(mine[0].offset))  # another chunk's bytes changed: this one still loads
    assert ref.load() == mine[1]
    plain.write_bytes(flipped(mine[1].offset + len(mine[1].data) // 2))
    with pytest.raises(InputError, match="changed while it was being read"):
        ref.load()
    plain.write_bytes(raw[: mine[1].offset + 10])  # cut short
    with pytest.raises(InputError, match=str(plain)):
        ref.load()


def _load_in_worker(task: tuple) -> tuple[int, bytes, int]:
    """A pass-1 worker's first step, alone: its chunk back, the bytes it got, its pid."""
    import os
    import time

    from jpqwen.data.corpus import SlotRef

    ref = task[0]
    index = ref.chunk.index if isinstance(ref, SlotRef) else ref.index
    time.sleep(index * 7 % 5 * 0.003)  # tasks finish out of order: a slot freed too early would show
    chunk = ref.load() if isinstance(ref, SlotRef) else ref
    if chunk.index == 5 and task[1] == "fail":
        raise ValueError("task 5 fails")
    return chunk.index, chunk.data, os.getpid()


@pytest.mark.parametrize("outcome", ["ok", "fail"])
def test_gz_chunks_reach_forked_workers_through_the_shared_ring(tmp_path, qwen_tokenizer_dir, outcome):
    """An inflated .gz chunk goes to its worker in a slot of memory shared through the fork: the
    worker reads exactly the chunk's bytes, however many more chunks than slots there are; a chunk
    larger than a slot goes by value; every slot is free again once the tasks are done, those that
    failed included."""
    import os

    from jpqwen.data.corpus import Pass1Workers, SlotRef, bounded_map

    rng = random.Random(11)
    lines = _lines(rng, 400)
    lines[100] = "長".encode() * 4000  # 12 KB: longer than a slot (chunk_bytes 6000 + the slack below)
    gz = tmp_path / "a.jsonl.gz"
    gz.write_bytes(gzip.compress(b"".join(line + b"\n" for line in lines)))
    chunks = list(iter_chunks([InputFile(gz, validation=False)], 6000, ReadReport()))
    workers = Pass1Workers(2, str(qwen_tokenizer_dir), "fastokens", chunk_bytes=6000)
    try:
        ring = workers.ring
        ring.slot_bytes = 8000  # (the real slack is 1 MB: shrink it so the long line overflows)
        assert len(chunks) > 10 * workers.in_flight
        by_value = [c.index for c in chunks if len(c.data) > ring.slot_bytes]
        assert by_value and all(not isinstance(SlotRef.of(chunks[i], ring), SlotRef) for i in by_value)

        def release(task: tuple) -> None:
            if isinstance(task[0], SlotRef):
                ring.release(task[0].slot)

        tasks = ((SlotRef.of(c, ring), outcome) for c in chunks)
        got = bounded_map(workers.pool(), _load_in_worker, tasks, workers.in_flight, on_done=release)
        if outcome == "fail":
            with pytest.raises(ValueError, match="task 5 fails"):
                list(got)
            workers.pool().shutdown(wait=True, cancel_futures=True)  # what the stage does on an error
        else:
            results = list(got)
            assert sorted((i, data) for i, data, _ in results) == [(c.index, c.data) for c in chunks]
            assert {pid for *_, pid in results} - {os.getpid()}  # loaded in the workers
        free = []
        while not ring._free.empty():
            free.append(ring._free.get())
        assert sorted(free) == list(range(workers.in_flight))
    finally:
        workers.close()
