"""Pass 1 on NeMo Curator + Dask (``executor: curator``, ``EXECUTOR=dask``).

The same filters, run the way NeMo Curator runs them on a cluster: each chunk
becomes one partition of a ``DocumentDataset``; ``Modify(JapaneseNormalizer)``
normalizes the ``text`` column and one ``Score`` per filter adds its score
column, on Dask workers (a ``LocalCluster`` on this machine, or the scheduler
at ``data.dask_scheduler``, e.g. one started with ``dask-mpi`` across nodes).
Each partition then writes its shard with the same code as the local executor
(first failing filter in order = reason, exact hash, MinHash bands), so the
rest of the pipeline and its outputs are identical: a test checks the bytes.

Chunks are submitted in batches of ``4 x workers`` partitions, so memory stays
bounded whatever the corpus size. The pinned Curator 0.8 is Dask-based (1.x
moved to Ray and does not fit beside NeMo 2.3's pins).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from jpqwen.data.filters import as_document_filter
from jpqwen.data.reader import Chunk, ReadReport, iter_chunks
from jpqwen.data.shards import ChunkInfo, MinHasher, ParsedLine, Profile, is_done, parse_chunk, write_shard
from jpqwen.data.writer import get_tokenizer

log = logging.getLogger("jpqwen.data")

_COLUMNS = {"line": "int64", "reason": "object", "excerpt": "object", "meta": "object", "text": "object"}


def _score_field(reason: str) -> str:
    return f"score_{reason}"


def _chunk_frame(chunk: Chunk) -> pd.DataFrame:
    """One partition: every non-blank line of the chunk, parsed (runs on a Dask worker)."""
    import json

    parsed, blank = parse_chunk(chunk)
    frame = pd.DataFrame(
        {
            "line": pd.Series([p.line for p in parsed], dtype="int64"),
            "reason": pd.Series([p.reason or "" for p in parsed], dtype="object"),
            "excerpt": pd.Series([p.excerpt for p in parsed], dtype="object"),
            "meta": pd.Series([json.dumps(p.meta, ensure_ascii=False) for p in parsed], dtype="object"),
            "text": pd.Series([p.text for p in parsed], dtype="object"),
        }
    )
    frame.attrs["blank"] = blank
    return frame


def _write_partition(
    frame: pd.DataFrame, info: ChunkInfo, blank: int, profile: Profile, root: str, tokenizer: tuple[str, str]
) -> pd.DataFrame:
    """Scores -> first failing filter -> shard on disk (runs on a Dask worker)."""
    import json

    parsed = [
        ParsedLine(int(line), reason or None, "", json.loads(meta), excerpt)
        for line, reason, meta, excerpt in zip(
            frame["line"], frame["reason"], frame["meta"], frame["excerpt"], strict=True
        )
    ]
    texts = [t if p.reason is None else "" for p, t in zip(parsed, frame["text"], strict=True)]
    score_cols = [frame[_score_field(f.reason)].tolist() for f in profile.filters]
    failures: list[tuple[int, float] | None] = []
    for row, p in enumerate(parsed):
        failure = None
        if p.reason is None:
            for fi, f in enumerate(profile.filters):
                score = score_cols[fi][row]
                if not f.keep_document(score):
                    failure = (fi, float(score))
                    break
        failures.append(failure)
    hasher = MinHasher(profile.near_dedup) if profile.near_dedup.enabled else None
    tok = get_tokenizer(*tokenizer, nfc_input=profile.normalize.nfc)  # one per process (see get_tokenizer)
    summary = write_shard(info, parsed, texts, failures, blank, profile, Path(root), hasher, tok)
    return pd.DataFrame({"chunk": [info.index], "documents": [summary["documents"]], "bytes": [info.nbytes]})


def _batches(chunks: Iterator[Chunk], size: int) -> Iterator[list[Chunk]]:
    batch: list[Chunk] = []
    for c in chunks:
        batch.append(c)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def run_pass1_curator(job, report: ReadReport) -> list[int]:
    import dask
    import dask.dataframe as dd
    from dask.distributed import Client, LocalCluster
    from nemo_curator import Modify, Score
    from nemo_curator.datasets import DocumentDataset

    from jpqwen.data.normalize import JapaneseNormalizer

    profile: Profile = job.profile
    cluster = None
    if job.dask_scheduler:
        client = Client(job.dask_scheduler)
    else:
        # one worker: an in-process Dask worker (no process start-up); more: one process each
        cluster = LocalCluster(
            n_workers=job.workers,
            threads_per_worker=1,
            processes=job.workers > 1,
            dashboard_address=None,
            silence_logs=logging.ERROR,
        )
        client = Client(cluster)
    log.info(
        "curator executor: Dask %s (%d workers)", client.scheduler.address, len(client.scheduler_info()["workers"])
    )
    indices: list[int] = []
    started = time.time()
    docs = 0
    bar = tqdm(desc=f"{profile.name} read+filter (curator)", unit="B", unit_scale=True, disable=_quiet())
    try:
        with dask.config.set({"dataframe.convert-string": False}):
            for batch in _batches(iter_chunks(job.files, job.chunk_bytes, report), 4 * max(job.workers, 1)):
                indices.extend(c.index for c in batch)
                todo = [c for c in batch if not is_done(job.shards, c.index)]
                for c in batch:
                    if c not in todo:
                        bar.update(len(c.data))
                if not todo:
                    continue
                meta = pd.DataFrame({k: pd.Series(dtype=v) for k, v in _COLUMNS.items()})
                parts = [dask.delayed(_chunk_frame)(c) for c in todo]
                dataset = DocumentDataset(dd.from_delayed(parts, meta=meta, verify_meta=False))
                dataset = Modify(JapaneseNormalizer(profile.normalize), text_field="text")(dataset)
                for f in map(as_document_filter, profile.filters):
                    dataset = Score(f, score_field=_score_field(f.reason), text_field="text", score_type=float)(dataset)
                # blank-line counts travel beside the partitions (pandas attrs do not survive Dask)
                blanks = {c.index: c.data.count(b"\n") for c in todo}
                writes = [
                    dask.delayed(_write_partition)(
                        part,
                        ChunkInfo.of(c),
                        blanks[c.index] - _non_blank(c),
                        profile,
                        str(job.shards),
                        (job.tokenizer_dir, job.tokenizer_backend),
                    )
                    for part, c in zip(dataset.df.to_delayed(), todo, strict=True)
                ]
                for frame in dask.compute(*writes):
                    docs += int(frame["documents"].sum())
                    bar.update(int(frame["bytes"].sum()))
                bar.set_postfix(docs=docs, docs_per_s=f"{docs / max(time.time() - started, 1e-9):.0f}")
    finally:
        bar.close()
        client.close()
        if cluster is not None:
            cluster.close()
    return indices


def _non_blank(chunk: Chunk) -> int:
    return sum(1 for raw in chunk.data.split(b"\n")[:-1] if raw.strip())


def _quiet() -> bool:
    import os

    return bool(os.environ.get("CI"))
