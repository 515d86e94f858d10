"""The ``data:`` section of a preset, as typed dataclasses.

Thresholds default to the values published by the projects they come from:

- Swallow corpus (Okazaki et al. 2024, "Building a Large Japanese Web Corpus for
  Large Language Models", arXiv:2404.17733; swallow-llm/swallow-corpus quality.py):
  length >= 400 chars, Japanese chars >= 0.5 of all, hiragana >= 0.2 and
  katakana <= 0.5 of Japanese chars, duplicate paragraphs/sentences <= 0.30 by
  count (<= 0.20 by chars), top 2/3/4-gram char fraction <= 0.20/0.18/0.16,
  duplicate 5..10-gram char fraction <= 0.15..0.10, mean sentence length in
  [20, 90] chars, longest sentence <= 200 chars, ellipsis-ending sentences <= 0.2.
- Uzushio (WorksApplications/uzushio scripts/pipeline_03a.conf): LinkCharRatio
  high 0.4 (we measure characters inside URLs).
- Near-duplicates: MinHash over character 5-grams with 20 bands x 10 rows (llm-jp
  corpus v4 / datatrove settings; Swallow used 5-grams too).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any

from jpqwen.config import section
from jpqwen.errors import ConfigError

EXECUTORS = ("local", "curator")
TOKENIZER_BACKENDS = ("fastokens", "tiktoken", "hf")  # = jpqwen.data.tokenizer.BACKENDS


@dataclass
class NormalizeConfig:
    nfc: bool = True  # Unicode NFC (the Qwen2.5 tokenizer's own normalizer is NFC too)
    strip_control: bool = True  # drop C0/C1 control chars except \n and \t, and zero-width chars
    collapse_spaces: bool = True  # runs of spaces/tabs -> one space; strip each line's ends
    max_blank_lines: int = 1  # at most this many empty lines in a row (paragraph breaks kept)


@dataclass
class FilterConfig:
    """A threshold of ``None`` switches that rule off."""

    min_chars: int | None = 400  # Swallow
    max_chars: int | None = None  # no upper bound: long Wikipedia articles are wanted
    min_japanese_ratio: float | None = 0.5  # Japanese chars / non-space chars (Swallow)
    min_hiragana_ratio: float | None = 0.2  # hiragana / Japanese letters (Swallow; Uzushio uses 0.1-0.15 of all)
    max_katakana_ratio: float | None = 0.5  # katakana / Japanese letters (Swallow)
    max_url_char_ratio: float | None = 0.4  # chars inside URLs / all chars (Uzushio LinkCharRatio high)
    max_dup_line_ratio: float | None = 0.30  # duplicated paragraphs / paragraphs (Swallow, Gopher)
    max_dup_line_char_ratio: float | None = 0.20  # chars in duplicated paragraphs / chars
    max_dup_sentence_ratio: float | None = 0.30  # duplicated sentences / sentences
    max_dup_sentence_char_ratio: float | None = 0.20
    # most frequent char n-gram's share of chars, n = 2, 3, 4 (Swallow)
    max_top_ngram_ratio: dict[int, float] | None = field(default_factory=lambda: {2: 0.20, 3: 0.18, 4: 0.16})
    # chars covered by char n-grams that occur more than once, n = 5..10 (Swallow)
    max_dup_ngram_ratio: dict[int, float] | None = field(
        default_factory=lambda: {5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12, 9: 0.11, 10: 0.10}
    )
    min_mean_sentence_chars: float | None = 20  # Swallow
    max_mean_sentence_chars: float | None = 90  # Swallow
    max_sentence_chars: int | None = 200  # Swallow
    max_ellipsis_sentence_ratio: float | None = 0.2  # Swallow


@dataclass
class NearDedupConfig:
    enabled: bool = True
    ngram: int = 5  # character n-grams (Japanese has no spaces); Swallow, llm-jp
    bands: int = 20  # LSH bands (b); llm-jp v4: 20 buckets
    rows: int = 10  # hashes per band (r); llm-jp v4: 10. Candidate at Jaccard s with prob 1-(1-s^r)^b
    seed: int = 42  # MinHash permutation seed: part of the output's identity


@dataclass
class EnglishConfig:
    source: str = "sample"  # English docs for replay + forgetting eval: 'sample' or a path/glob
    validation_fraction: float = 0.25  # share held out as en_validation.jsonl (hash split), rest -> replay
    min_chars: int = 200  # only a length rule: the Japanese filters do not apply to English


@dataclass
class DataConfig:
    source: str = "sample"  # sample | llm-jp-v3-ja-wiki | path or glob of .jsonl/.jsonl.gz (env DATA_SOURCE)
    name: str = "ja_wiki"  # output prefix: <WORK_DIR>/data/<name>_{train,validation}_text_document
    download_dir: str | None = None  # where LLM-jp files go (env DATA_DIR, default ./data/raw)
    tokenizer: str | None = None  # HF tokenizer dir; default: import stage's hf_dir, else the test tokenizer
    # fastokens (fastest) | tiktoken | hf (tokenizers library): same ids, tested (see jpqwen/data/tokenizer.py)
    tokenizer_backend: str = "fastokens"
    executor: str = "local"  # local (process pool) | curator (NeMo Curator on Dask; env EXECUTOR=dask)
    workers: int = 0  # processes; 0 = all usable cores
    dask_scheduler: str | None = None  # curator executor: a Dask scheduler address; None = LocalCluster
    chunk_mb: float = 8.0  # input is cut into chunks of about this many MB (the unit of resume and parallelism)
    validation_files: str = "validation*"  # input files whose name matches are the validation split
    validation_fraction: float = 0.05  # without such files: hash split, this share -> validation
    examples_per_filter: int = 3  # examples of rejected docs shown in data_card.md
    wandb: bool = True  # log the data card to W&B (offline without a key)
    normalize: NormalizeConfig = field(default_factory=NormalizeConfig)
    filters: FilterConfig = field(default_factory=FilterConfig)
    near_dedup: NearDedupConfig = field(default_factory=NearDedupConfig)
    english: EnglishConfig = field(default_factory=EnglishConfig)

    def __post_init__(self) -> None:
        for name, cls in (
            ("normalize", NormalizeConfig),
            ("filters", FilterConfig),
            ("near_dedup", NearDedupConfig),
            ("english", EnglishConfig),
        ):
            value = getattr(self, name)
            if isinstance(value, dict):
                setattr(self, name, _sub(cls, value, f"data.{name}"))
            elif value is None:
                setattr(self, name, cls())
        if self.executor == "dask":
            self.executor = "curator"
        if self.executor not in EXECUTORS:
            raise ValueError(f"executor must be one of {EXECUTORS} (or 'dask'), got {self.executor!r}")
        if self.tokenizer_backend not in TOKENIZER_BACKENDS:
            raise ValueError(f"tokenizer_backend must be one of {TOKENIZER_BACKENDS}, got {self.tokenizer_backend!r}")
        if not 0 <= self.validation_fraction < 1:
            raise ValueError(f"validation_fraction must be in [0, 1), got {self.validation_fraction}")
        if self.chunk_mb <= 0:
            raise ValueError("chunk_mb must be > 0")

    @property
    def chunk_bytes(self) -> int:
        return max(1, int(self.chunk_mb * 1024 * 1024))

    def identity(self) -> dict[str, Any]:
        """What the outputs depend on: everything except how the work is spread."""
        d = dataclasses.asdict(self)
        for key in ("executor", "workers", "dask_scheduler", "wandb", "download_dir"):
            d.pop(key)
        return d


def _sub(cls: type, raw: dict, where: str) -> Any:
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ValueError(f"unknown key(s) in {where}: {', '.join(unknown)} (known: {', '.join(sorted(known))})")
    return cls(**raw)


def data_config(cfg: dict, environ: dict[str, str] | None = None) -> DataConfig:
    """The typed ``data`` section; env DATA_SOURCE and EXECUTOR win over the file."""
    env = os.environ if environ is None else environ
    dc = section(cfg, "data", DataConfig)
    try:
        if env.get("DATA_SOURCE"):
            dc.source = env["DATA_SOURCE"]
        if env.get("EXECUTOR"):
            dc.executor = env["EXECUTOR"]
            dc.__post_init__()
    except ValueError as exc:
        raise ConfigError(f"environment: {exc}") from None
    return dc


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1
