"""A corpus through the pipeline: pass 1 (parallel: parse, normalize, filter, hash, tokenize) and
the global dedup (:func:`prepare_corpus`), then the datasets: the parts' kept documents merged in
input order (:func:`write_corpus`).

Work files live in ``<cache>/`` (keyed by a fingerprint of inputs + settings,
so a changed config never reuses stale shards)::

    shards/<chunk>/   pass 1 output (see shards.py): hashes, a Megatron part, held-out jsonl

Pass 1 skips chunks already finished, which is what makes an interrupted run resume.
Parallelism: a process pool (``executor: local``) with a bounded number of chunks in
flight (memory stays ~ workers x 2 x chunk_mb), or NeMo Curator on Dask
(``executor: curator``, see curator.py).
"""

from __future__ import annotations

import gc
import logging
import mmap
import multiprocessing as mp
import os
import queue
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from jpqwen.data import dedup
from jpqwen.data.filters import warm_up
from jpqwen.data.reader import Chunk, ChunkRef, ReadReport, is_gzip, iter_chunks
from jpqwen.data.shards import (
    STATUS_CANDIDATE,
    STATUS_QUARANTINED,
    MinHasher,
    Profile,
    is_done,
    load_arrays,
    load_summary,
    process_chunk,
    shard_dir,
)
from jpqwen.data.sources import InputFile
from jpqwen.data.tokenizer import QwenTokenizer, fork_safe
from jpqwen.data.writer import (
    SPLITS,
    concat_selected_lines,
    get_tokenizer,
    indexed_dataset,
    merge_shards,
)

log = logging.getLogger("jpqwen.data")


def quiet() -> bool:
    return bool(os.environ.get("CI"))


@dataclass
class CorpusResult:
    profile: str
    documents_in: int = 0
    bytes_in: int = 0
    blank_lines: int = 0
    kept: int = 0
    rejected_by_filter: dict[str, int] = field(default_factory=dict)
    duplicates_exact: int = 0
    duplicates_near: int = 0
    quarantined: int = 0
    quarantine: list[dict] = field(default_factory=list)
    examples: dict[str, list[dict]] = field(default_factory=dict)
    duplicate_examples: dict[str, list[dict]] = field(default_factory=dict)
    splits: dict[str, dict[str, int]] = field(default_factory=dict)
    chars_before: np.ndarray | None = None  # normalized length of every parsed document
    chars_after: np.ndarray | None = None  # of every kept document
    incomplete: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    chunks: list[int] = field(default_factory=list)  # chunk indices in input order
    keep: np.ndarray | None = field(default=None, repr=False)  # per candidate: kept after dedup
    cand_split: np.ndarray | None = field(default=None, repr=False)  # per candidate: 0 train, 1 validation
    cand_starts: np.ndarray | None = field(default=None, repr=False)  # first candidate index of each chunk

    def check_accounting(self) -> None:
        counted = (
            self.kept
            + sum(self.rejected_by_filter.values())
            + self.duplicates_exact
            + self.duplicates_near
            + self.quarantined
        )
        if counted != self.documents_in:  # an internal invariant: every document counted exactly once
            raise RuntimeError(f"{self.profile}: {counted} documents accounted for, {self.documents_in} read")


# ---- process-pool plumbing -------------------------------------------------------------------
_WORKER: dict[str, Any] = {}
_WARM_TEXT = "日本語の文章。カタカナ、ひらがな and English 123 <think>"


def _init_worker(tokenizer_dir: str, backend: str) -> None:
    _WORKER["tokenizer"] = (tokenizer_dir, backend)
    _WORKER["hashers"] = {}
    gc.freeze()  # what the fork brought is permanent


def _pass1_tokenizer(tokenizer_dir: str, backend: str, profile: Profile) -> QwenTokenizer:
    # pass 1 normalizes every text before tokenizing it: NFC text when the profile's normalize has NFC
    return get_tokenizer(tokenizer_dir, backend, nfc_input=profile.normalize.nfc)


def _pass1_task(args: tuple[Chunk | ChunkRef | SlotRef, Profile, Path]) -> dict:
    chunk, profile, shards = args
    if isinstance(chunk, ChunkRef | SlotRef):  # (a worker reads its chunk itself: from the file, or the ring)
        chunk = chunk.load()
    hashers = _WORKER["hashers"]
    if profile.name not in hashers:
        hashers[profile.name] = MinHasher(profile.near_dedup) if profile.near_dedup.enabled else None
    tok = _pass1_tokenizer(*_WORKER["tokenizer"], profile)  # (after a fork: see get_tokenizer)
    return process_chunk(chunk, profile, shards, hashers[profile.name], tok)


@contextmanager
def cyclic_gc_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off for the block: pass 1's start-up imports torch,
    megatron-core and numba's kernels, millions of objects, and the collector's full passes over
    them took ~0.5 CPU-s per run (measured with gc.callbacks: 0.52 -> 0.05 s on 100 MB). They are
    frozen right after (gc.freeze), so later passes skip them."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _load_for_pass1(job: CorpusJob, share_tokenizer: bool) -> None:
    """What pass 1 needs loaded in this process, before any worker forks from it, so each inherits
    it: the numba filter kernels, megatron-core (the parts' writer) and, where it may be shared
    through the fork (see get_tokenizer), the tokenizer, built and called once."""
    warm_up()
    logging.getLogger(indexed_dataset().__name__).setLevel(logging.WARNING)  # it logs every part it opens
    if share_tokenizer:
        tok = _pass1_tokenizer(job.tokenizer_dir, job.tokenizer_backend, job.profile)
        tok.encode_documents_flat([_WARM_TEXT])  # the lazy state of a first call, inherited too
    gc.freeze()  # the imported stack is permanent: cyclic GC passes then skip it (~13 % of pass 1)


class ChunkRing:
    """Memory shared with the pass-1 workers (an anonymous shared mapping made before they fork, so
    each inherits it), in ``slots`` slots of ``slot_bytes``: the main process copies an inflated
    ``.gz`` chunk into a free slot and hands its worker the slot number (a :class:`SlotRef`); the
    slot is free again once that task is done. Through the pool's pipe instead, a chunk cost ~2.7
    CPU-ms per MB in all (pickled, written, read, unpickled); through a slot, two copies (~0.4).
    A chunk larger than a slot (a last line longer than the slack) goes through the pipe."""

    def __init__(self, slots: int, slot_bytes: int) -> None:
        self.slot_bytes = slot_bytes
        self.mem = mmap.mmap(-1, slots * slot_bytes)  # MAP_SHARED | MAP_ANONYMOUS: shared across fork
        self._free: queue.SimpleQueue[int] = queue.SimpleQueue()
        for slot in range(slots):
            self._free.put(slot)

    def put(self, data: bytes) -> int | None:
        """A free slot (waiting for one) holding ``data``; None when it does not fit one."""
        if len(data) > self.slot_bytes:
            return None
        slot = self._free.get()
        start = slot * self.slot_bytes
        self.mem[start : start + len(data)] = data
        return slot

    def release(self, slot: int) -> None:
        self._free.put(slot)

    def read(self, slot: int, length: int) -> bytes:
        start = slot * self.slot_bytes
        return self.mem[start : start + length]

    def close(self) -> None:
        self.mem.close()


_RING: dict[str, ChunkRing] = {}  # "pass1": this process tree's ring (a worker's came with the fork)


@dataclass(frozen=True)
class SlotRef:
    """A ``.gz`` chunk in a :class:`ChunkRing` slot: the chunk without its bytes, where they are."""

    chunk: Chunk  # data=b""
    slot: int
    length: int

    @classmethod
    def of(cls, chunk: Chunk, ring: ChunkRing) -> SlotRef | Chunk:
        slot = ring.put(chunk.data)
        if slot is None:
            return chunk
        return cls(replace(chunk, data=b""), slot, len(chunk.data))

    def load(self) -> Chunk:
        return replace(self.chunk, data=_RING["pass1"].read(self.slot, self.length))


@dataclass
class Pass1Workers:
    """The worker processes of pass 1, shared by both corpora (each builds the tokenizer once), started
    on first use: after this process has loaded what they inherit through the fork (the chunk ring
    included: ``chunk_bytes`` sizes its slots)."""

    count: int
    tokenizer_dir: str
    tokenizer_backend: str
    chunk_bytes: int
    _pool: ProcessPoolExecutor | None = None

    @property
    def started(self) -> bool:
        return self._pool is not None

    @property
    def in_flight(self) -> int:
        """Tasks queued at most: two per worker, so none waits for its next chunk."""
        return 2 * self.count

    @property
    def ring(self) -> ChunkRing:
        self.pool()
        return _RING["pass1"]

    def pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            # slack: a chunk ends at the first line break past chunk_bytes
            _RING["pass1"] = ChunkRing(self.in_flight, self.chunk_bytes + (1 << 20))
            self._pool = _pool(self.count, _init_worker, (self.tokenizer_dir, self.tokenizer_backend))
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None
            _RING.pop("pass1").close()


def _pool(workers: int, initializer: Callable | None = None, initargs: tuple = ()) -> ProcessPoolExecutor:
    # fork: workers inherit the imported stack (NeMo Curator takes ~6 s to import) and a fork-safe tokenizer
    ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else mp.get_context()
    return ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=initializer, initargs=initargs)


def bounded_map(
    pool: ProcessPoolExecutor,
    fn: Callable,
    items: Iterable,
    in_flight: int,
    on_done: Callable[[Any], None] | None = None,
) -> Iterator[Any]:
    """Like ``pool.map`` but pulls ``items`` lazily: at most ``in_flight`` tasks queued (bounded memory).
    ``on_done(item)`` runs (in the pool's thread) as soon as ``item``'s task has finished, failed or
    been cancelled."""
    pending: set[Future] = set()
    for item in items:
        fut = pool.submit(fn, item)
        if on_done is not None:
            fut.add_done_callback(lambda _, item=item: on_done(item))
        pending.add(fut)
        if len(pending) >= in_flight:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                yield fut.result()
    for fut in pending:
        yield fut.result()


# ---- the corpus run ----------------------------------------------------------------------------
@dataclass
class CorpusJob:
    profile: Profile
    files: list[InputFile]
    cache: Path
    chunk_bytes: int
    workers: int
    tokenizer_dir: str
    tokenizer_backend: str
    executor: str = "local"
    dask_scheduler: str | None = None

    @property
    def shards(self) -> Path:
        return self.cache / "shards"

    def small(self) -> bool:
        """At most one chunk of plain files: a pool of workers would only add its start-up."""
        return all(not is_gzip(f.path) for f in self.files) and (
            sum(f.path.stat().st_size for f in self.files) <= self.chunk_bytes
        )


def run_pass1(job: CorpusJob, result: CorpusResult, workers: Pass1Workers | None = None) -> list[int]:
    """Pass 1 over every chunk not finished yet; returns the chunk indices in input order."""
    t0 = time.time()
    report = ReadReport()
    job.shards.mkdir(parents=True, exist_ok=True)
    if job.executor == "curator":
        from jpqwen.data.curator import run_pass1_curator

        indices = run_pass1_curator(job, report)
    else:
        indices = []
        docs = 0
        bar = tqdm(desc=f"{job.profile.name} read+filter+tokenize", unit="B", unit_scale=True, disable=quiet())
        started = time.time()

        def todo() -> Iterator[Chunk]:
            for chunk in iter_chunks(job.files, job.chunk_bytes, report):
                indices.append(chunk.index)
                if is_done(job.shards, chunk.index):
                    bar.update(len(chunk.data))
                    continue
                yield chunk

        # no pool for one worker, nor to start one for a single chunk
        in_process = job.workers <= 1 or workers is None or (not workers.started and job.small())
        with cyclic_gc_paused():
            _load_for_pass1(job, share_tokenizer=in_process or fork_safe(job.tokenizer_backend))
        tasks = ((chunk, job.profile, job.shards) for chunk in todo())
        if in_process:
            _init_worker(job.tokenizer_dir, job.tokenizer_backend)
            results: Iterable[dict] = (_pass1_task(t) for t in tasks)
        else:
            assert workers is not None
            ring = workers.ring

            def by_place(chunk: Chunk) -> Chunk | ChunkRef | SlotRef:
                # a plain file's chunk as its place in the file; an inflated .gz chunk in a ring slot
                return ChunkRef.of(chunk) if chunk.offset is not None else SlotRef.of(chunk, ring)

            def release(task: tuple) -> None:
                if isinstance(task[0], SlotRef):
                    ring.release(task[0].slot)

            refs = ((by_place(chunk), profile, shards) for chunk, profile, shards in tasks)
            results = bounded_map(workers.pool(), _pass1_task, refs, workers.in_flight, on_done=release)
        try:
            for summary in results:
                docs += summary["documents"]
                bar.update(summary["bytes"])
                bar.set_postfix(docs=docs, docs_per_s=f"{docs / max(time.time() - started, 1e-9):.0f}")
        finally:
            bar.close()
    result.incomplete = report.incomplete
    result.seconds["read_filter_tokenize"] = round(time.time() - t0, 3)
    return indices


def prepare_corpus(job: CorpusJob, workers: Pass1Workers | None = None) -> CorpusResult:
    """Pass 1 and the global dedup of one corpus: what each split keeps (``result.keep``/``cand_split``)."""
    result = CorpusResult(profile=job.profile.name)
    indices = run_pass1(job, result, workers)
    result.chunks = indices
    if result.incomplete:
        return result  # the caller fails the stage, naming the files

    # ---- gather pass-1 results (hashes only) and account for every document
    t0 = time.time()
    reasons = job.profile.reasons
    rejected: Counter[str] = Counter()
    hashes, bands, cand_line_arrays, cand_files, chars_before, cand_chars = [], [], [], [], [], []
    cand_tokens, cand_split = [], []
    cand_count = []
    for index in indices:
        arrays = load_arrays(job.shards, index)
        summary = load_summary(job.shards, index)
        status = arrays["status"]
        result.documents_in += int(status.size)
        result.bytes_in += int(summary["bytes"])
        result.blank_lines += int(summary["blank_lines"])
        result.quarantined += int(np.count_nonzero(status == STATUS_QUARANTINED))
        result.quarantine.extend(summary["quarantine"])
        for code, count in zip(*np.unique(status[status > 0], return_counts=True), strict=False):
            rejected[reasons[int(code) - 1]] += int(count)
        for reason, exs in summary["examples"].items():
            bucket = result.examples.setdefault(reason, [])
            bucket.extend(exs[: max(0, job.profile.examples_per_filter - len(bucket))])
        parsed = status != STATUS_QUARANTINED
        chars_before.append(arrays["chars"][parsed])
        cand = status == STATUS_CANDIDATE
        cand_line_arrays.append(arrays["line"][cand])
        cand_files.append(summary["file"])
        cand_chars.append(arrays["chars"][cand])
        hashes.append(arrays["cand_hash"])
        bands.append(arrays["cand_bands"])
        cand_tokens.append(arrays["cand_tokens"])
        cand_split.append(arrays["cand_split"])
        cand_count.append(int(np.count_nonzero(cand)))
    result.rejected_by_filter = {r: rejected[r] for r in reasons if rejected[r]}
    failed = sum(1 for q in result.quarantine if q["reason"].startswith("tokenizer ("))
    if failed:
        log.warning(
            "%s: the tokenizer failed on %d document(s); quarantined (see quarantine.jsonl)", job.profile.name, failed
        )
    all_hashes = np.concatenate(hashes) if hashes else np.zeros((0, 2), dtype=np.uint64)
    all_bands = np.concatenate(bands) if bands and job.profile.near_dedup.enabled else None
    decision, keeper = dedup.resolve(all_hashes, all_bands)
    del all_hashes, all_bands, hashes, bands
    result.duplicates_exact = int(np.count_nonzero(decision == dedup.DUP_EXACT))
    result.duplicates_near = int(np.count_nonzero(decision == dedup.DUP_NEAR))
    result.kept = int(np.count_nonzero(decision == dedup.KEEP))
    starts = np.concatenate(([0], np.cumsum(cand_count)))

    def where(i: int) -> tuple[str, int]:  # candidate index -> (file, line)
        k = int(np.searchsorted(starts, i, side="right")) - 1
        return cand_files[k], int(cand_line_arrays[k][i - starts[k]])

    for kind, code in (("duplicate_exact", dedup.DUP_EXACT), ("duplicate_near", dedup.DUP_NEAR)):
        exs = []
        for i in np.flatnonzero(decision == code)[: job.profile.examples_per_filter]:
            f, line = where(int(i))
            kf, kline = where(int(keeper[i]))
            exs.append({"file": f, "line": line, "duplicate_of": {"file": kf, "line": kline}})
        if exs:
            result.duplicate_examples[kind] = exs
    result.chars_before = np.concatenate(chars_before) if chars_before else np.zeros(0, np.int32)
    all_cand_chars = np.concatenate(cand_chars) if cand_chars else np.zeros(0, np.int32)
    result.chars_after = all_cand_chars[decision == dedup.KEEP]
    result.check_accounting()
    result.seconds["dedup"] = round(time.time() - t0, 3)

    keep = decision == dedup.KEEP
    split = np.concatenate(cand_split) if cand_split else np.zeros(0, np.uint8)
    tokens = np.concatenate(cand_tokens) if cand_tokens else np.zeros(0, np.int64)
    for code, name in enumerate(SPLITS):
        mask = keep & (split == code)
        result.splits[name] = {
            "documents": int(np.count_nonzero(mask)),
            "tokens": int(tokens[mask].sum()),
            "chars": int(all_cand_chars[mask].sum()),
        }
    result.keep, result.cand_split, result.cand_starts = keep, split, starts
    return result


def write_corpus(job: CorpusJob, result: CorpusResult, prefixes: dict[str, Path], heldout_jsonl: Path) -> None:
    """The kept documents of each split in ``prefixes`` (Megatron datasets: the parts' tokens, in input
    order) and the held-out (validation) documents as jsonl."""
    t0 = time.time()
    keep, split, starts = result.keep, result.cand_split, result.cand_starts
    assert keep is not None and split is not None and starts is not None
    spans = [slice(int(starts[k]), int(starts[k + 1])) for k in range(len(result.chunks))]
    parts = [shard_dir(job.shards, index) / "tokens" for index in result.chunks]
    for s, name in enumerate(SPLITS):
        if name not in prefixes:
            continue
        want = result.splits[name]
        bar = tqdm(total=want["documents"], desc=f"{job.profile.name} write {name}", unit="doc", disable=quiet())
        got = merge_shards(parts, [keep[sp] & (split[sp] == s) for sp in spans], prefixes[name], bar.update)
        bar.close()
        if got["documents"] != want["documents"] or got["tokens"] != want["tokens"]:  # an internal invariant
            raise RuntimeError(f"{job.profile.name} {name}: wrote {got}, the shards say {want}")
    heldout = [shard_dir(job.shards, index) / "heldout.jsonl" for index in result.chunks]
    # heldout.jsonl holds the validation candidates of its shard, one line each: keep the kept ones
    concat_selected_lines(heldout, [keep[sp][split[sp] == 1] for sp in spans], heldout_jsonl)
    result.seconds["write"] = round(time.time() - t0, 3)
