"""A corpus through the pipeline: pass 1 (parallel) and global dedup (:func:`prepare_corpus`), then
pass 2 (parallel; :func:`run_pass2`, one pool for every corpus given, so a worker builds the
tokenizer once) and the token counts (:func:`finish_corpus`); the stage merges the parts.

Work files live in ``<cache>/`` (keyed by a fingerprint of inputs + settings,
so a changed config never reuses stale shards)::

    shards/<chunk>/   pass 1 output (see shards.py)
    parts/<chunk>_*   pass 2 output: Megatron parts + validation jsonl per chunk

Both passes skip chunks already finished, which is what makes an interrupted
run resume. Parallelism: a process pool (``executor: local``) with a bounded
number of chunks in flight (memory stays ~ workers x 2 x chunk_mb), or NeMo
Curator on Dask for pass 1 (``executor: curator``, see curator.py).
"""

from __future__ import annotations

import gc
import logging
import multiprocessing as mp
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from jpqwen.data import dedup
from jpqwen.data.filters import warm_up
from jpqwen.data.reader import Chunk, ReadReport, iter_chunks
from jpqwen.data.shards import (
    STATUS_CANDIDATE,
    STATUS_QUARANTINED,
    MinHasher,
    Profile,
    is_done,
    load_arrays,
    load_summary,
    process_chunk,
)
from jpqwen.data.sources import InputFile
from jpqwen.data.tokenizer import tokenizer_json, warm_spec
from jpqwen.data.writer import (
    FORK_SAFE_BACKENDS,
    SPLITS,
    get_tokenizer,
    indexed_dataset,
    load_part_stats,
    part_done,
    part_prefix,
    tokenize_shard,
)

log = logging.getLogger("jpqwen.data")


def quiet() -> bool:
    return bool(os.environ.get("CI"))


@dataclass
class Pass2State:
    keep: np.ndarray  # per candidate: kept after dedup
    starts: np.ndarray  # first candidate index of each chunk
    all_cand_chars: np.ndarray
    tasks: list[tuple]  # tokenize_shard arguments of the chunks not finished yet


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
    _pass2: Pass2State | None = field(default=None, repr=False)  # between prepare_corpus and finish_corpus

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


def _init_pass1(profile: Profile, shards: Path) -> None:
    _WORKER["profile"] = profile
    _WORKER["shards"] = shards
    _WORKER["hasher"] = MinHasher(profile.near_dedup) if profile.near_dedup.enabled else None


def _pass1_task(chunk: Chunk) -> dict:
    return process_chunk(chunk, _WORKER["profile"], _WORKER["shards"], _WORKER["hasher"])


def _pass2_task(args: tuple) -> dict:
    return tokenize_shard(*args)


def _pool(workers: int, initializer: Callable | None = None, initargs: tuple = ()) -> ProcessPoolExecutor:
    # fork: workers inherit the imported stack (NeMo Curator takes ~6 s to import) and a fork-safe tokenizer
    ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else mp.get_context()
    return ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=initializer, initargs=initargs)


def bounded_map(pool: ProcessPoolExecutor, fn: Callable, items: Iterable, in_flight: int) -> Iterator[Any]:
    """Like ``pool.map`` but pulls ``items`` lazily: at most ``in_flight`` tasks queued (bounded memory)."""
    pending: set[Future] = set()
    for item in items:
        pending.add(pool.submit(fn, item))
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

    @property
    def parts(self) -> Path:
        return self.cache / "parts"


def run_pass1(job: CorpusJob, result: CorpusResult) -> list[int]:
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
        bar = tqdm(desc=f"{job.profile.name} read+filter", unit="B", unit_scale=True, disable=quiet())
        started = time.time()

        def todo() -> Iterator[Chunk]:
            for chunk in iter_chunks(job.files, job.chunk_bytes, report):
                indices.append(chunk.index)
                if is_done(job.shards, chunk.index):
                    bar.update(len(chunk.data))
                    continue
                yield chunk

        warm_up()  # compile the numba filter kernels once, before forking: workers inherit them
        gc.freeze()  # the imported stack is permanent: cyclic GC passes then skip it (~13 % of pass 1)
        if job.workers <= 1:
            _init_pass1(job.profile, job.shards)
            results: Iterable[dict] = (_pass1_task(c) for c in todo())
            pool = None
        else:
            pool = _pool(job.workers, _init_pass1, (job.profile, job.shards))
            results = bounded_map(pool, _pass1_task, todo(), in_flight=2 * job.workers)
        try:
            for summary in results:
                docs += summary["documents"]
                bar.update(summary["bytes"])
                bar.set_postfix(docs=docs, docs_per_s=f"{docs / max(time.time() - started, 1e-9):.0f}")
        finally:
            if pool is not None:
                pool.shutdown(cancel_futures=True)
            bar.close()
    result.incomplete = report.incomplete
    result.seconds["read_filter"] = round(time.time() - t0, 3)
    return indices


def prepare_corpus(job: CorpusJob) -> CorpusResult:
    """Pass 1 and the global dedup of one corpus; its pass-2 tasks wait in ``result._pass2``."""
    result = CorpusResult(profile=job.profile.name)
    indices = run_pass1(job, result)
    result.chunks = indices
    if result.incomplete:
        return result  # the caller fails the stage, naming the files

    # ---- gather pass-1 results (hashes only) and account for every document
    t0 = time.time()
    reasons = job.profile.reasons
    rejected: Counter[str] = Counter()
    hashes, bands, cand_line_arrays, cand_files, chars_before, cand_chars = [], [], [], [], [], []
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
        cand_count.append(int(np.count_nonzero(cand)))
    result.rejected_by_filter = {r: rejected[r] for r in reasons if rejected[r]}
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

    # pass 2 (run_pass2) and finish_corpus follow; the stage runs both corpora's pass 2 in one pool
    keep = decision == dedup.KEEP
    result._pass2 = Pass2State(keep=keep, starts=starts, all_cand_chars=all_cand_chars, tasks=[])
    for k, index in enumerate(indices):
        if not part_done(job.parts, index):
            result._pass2.tasks.append(
                (
                    job.shards,
                    job.parts,
                    index,
                    keep[starts[k] : starts[k + 1]],
                    job.tokenizer_dir,
                    job.tokenizer_backend,
                    "validation",
                )
            )
    return result


def run_pass2(jobs: list[tuple[CorpusJob, CorpusResult]]) -> None:
    """Tokenize + write the parts of every corpus given (skipping finished ones) in one go: one process
    pool serves all of them (so each worker builds the tokenizer once), or this process when there is
    no work for a pool (1 worker, or at most 1 task in all). Called after every pass-1 pool is done."""
    if not jobs:
        return
    t0 = time.time()
    first = jobs[0][0]
    tasks = [(job, res, t) for job, res in jobs for t in res._pass2.tasks]
    workers = min(job.workers for job, _ in jobs)
    # load megatron-core here, once: forked workers inherit it (~6 s each otherwise). The tokenizer too
    # where that is fork-safe; fastokens (a Rust thread pool) is built in each worker after the fork,
    # or here when this process encodes itself (no fork follows: pass 1 is done)
    _indexed = indexed_dataset()
    logging.getLogger(_indexed.__name__).setLevel(logging.WARNING)  # it logs every part it opens
    in_process = workers <= 1 or len(tasks) <= 1
    if tasks:
        if in_process or first.tokenizer_backend in FORK_SAFE_BACKENDS:
            get_tokenizer(first.tokenizer_dir, first.tokenizer_backend)
        elif first.tokenizer_backend != "fastokens":  # (fastokens reads tokenizer.json in Rust)
            warm_spec(tokenizer_json(first.tokenizer_dir))  # tokenizer.json parsed once, inherited by the workers
    gc.freeze()  # as in pass 1: collections then skip megatron-core, torch and the tokenizer
    load_s = round(time.time() - t0, 3)
    t0 = time.time()
    bars = {}
    for job, res in jobs:
        bar = bars[id(res)] = tqdm(total=res.kept, desc=f"{job.profile.name} tokenize", unit="doc", disable=quiet())
        bar.update(res.kept - sum(int(t[3].sum()) for t in res._pass2.tasks))
    owners = [res for _, res, _ in tasks]
    if in_process:
        for res, (_, _, t) in zip(owners, tasks, strict=True):
            stats = _pass2_task(t)
            bars[id(res)].update(sum(s["documents"] for s in stats["splits"].values()))
    elif tasks:
        with _pool(workers) as pool:
            # bounded_map yields in completion order; tag each task with its corpus
            tagged = [(k, t) for k, (_, _, t) in enumerate(tasks)]
            for k, stats in bounded_map(pool, _pass2_tagged, tagged, in_flight=2 * workers):
                bars[id(owners[k])].update(sum(s["documents"] for s in stats["splits"].values()))
    for bar in bars.values():
        bar.close()
    spent = round(time.time() - t0, 3)
    for _, res in jobs:
        res.seconds["load_tokenizer_and_megatron"] = load_s
        res.seconds["tokenize"] = spent  # all corpora's pass 2 together (one pool)


def _pass2_tagged(item: tuple[int, tuple]) -> tuple[int, dict]:
    return item[0], tokenize_shard(*item[1])


def finish_corpus(job: CorpusJob, result: CorpusResult) -> CorpusResult:
    """Gather the parts' token counts; documents the tokenizer failed on: kept -> quarantined."""
    state = result._pass2
    keep, starts = state.keep, state.starts
    totals = {name: {"documents": 0, "tokens": 0, "chars": 0} for name in SPLITS}
    failed = []
    for k, index in enumerate(result.chunks):
        part = load_part_stats(job.parts, index)
        for name, st in part["splits"].items():
            for key in st:
                totals[name][key] += st[key]
        # documents the tokenizer failed on: kept -> quarantined (each still counted once)
        result.quarantine.extend(part["quarantine"])
        failed += [starts[k] + i for i in part["failed"]]
    if failed:
        result.kept -= len(failed)
        result.quarantined += len(failed)
        keep[failed] = False
        result.chars_after = state.all_cand_chars[keep]
        log.warning(
            "%s: the tokenizer failed on %d document(s); quarantined (see quarantine.jsonl)",
            job.profile.name,
            len(failed),
        )
        result.check_accounting()
    result.splits = totals
    result._pass2 = None
    return result


def part_list(job: CorpusJob, indices: list[int], split: str) -> list[Path]:
    return [part_prefix(job.parts, i, split) for i in indices]
