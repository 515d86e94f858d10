"""Japanese quality filters (Swallow / Uzushio family) as NeMo Curator ``DocumentFilter``s.

Each filter has one scalar score and one threshold, so ``nemo_curator.ScoreFilter``
can run it on a Dask ``DocumentDataset`` exactly as the local executor runs it,
and the data card can say which single rule removed a document (its name is
the rejection reason). :func:`build_filters` returns them in the order they are
applied; the first rule a document fails is its reason.

Character classes (Unicode blocks):
  hiragana U+3041-309F; katakana U+30A0-30FF, U+31F0-31FF, half-width U+FF66-FF9F;
  kanji U+3400-4DBF, U+4E00-9FFF, U+F900-FAFF, U+3005-3007 (々〆〇);
  Japanese punctuation/symbols U+3000-303F, full-width forms U+FF01-FF65.
"Japanese letters" = hiragana + katakana + kanji; "Japanese chars" adds the
punctuation/full-width forms. Ratios of characters are over non-whitespace chars.

Score functions share one analysis of the text (code points as a numpy array,
n-gram hashes), cached for the last text seen, so ten filters cost about one pass.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property, lru_cache
from types import SimpleNamespace

import numpy as np

from jpqwen.data.config import FilterConfig
from jpqwen.data.imports import import_module

# == nemo_curator.filters.DocumentFilter, without importing all of NeMo Curator (see imports.py)
DocumentFilter = import_module("nemo_curator.filters.doc_filter").DocumentFilter

_SENTENCE = re.compile(r"[^。．！？!?\n]+[。．！？!?]*")
_URL = re.compile(r"(?:https?|ftp)://[^\s　<>\"']+|www\.[^\s　<>\"']+")
_ELLIPSIS_END = ("…", "...", "‥", "・・・")
_MUL = np.uint64(0x100000001B3)  # FNV prime: rolling polynomial hash of char n-grams (mod 2**64)


# Character classes as sorted code point ranges: (first code point, class).
_OTHER, _SPACE, _HIRA, _KATA, _KANJI, _PUNCT = range(6)
_RANGES = [
    (0x0, _OTHER), (0x9, _SPACE), (0xB, _OTHER), (0xD, _SPACE), (0xE, _OTHER), (0x20, _SPACE), (0x21, _OTHER),
    (0x3000, _SPACE), (0x3001, _PUNCT), (0x3005, _KANJI), (0x3008, _PUNCT), (0x3040, _OTHER), (0x3041, _HIRA),
    (0x30A0, _KATA), (0x3100, _OTHER), (0x31F0, _KATA), (0x3200, _OTHER), (0x3400, _KANJI), (0x4DC0, _OTHER),
    (0x4E00, _KANJI), (0xA000, _OTHER), (0xF900, _KANJI), (0xFB00, _OTHER), (0xFF01, _PUNCT), (0xFF66, _KATA),
    (0xFFA0, _OTHER), (0x20000, _KANJI), (0x30000, _OTHER),
]  # fmt: skip
_RANGE_STARTS = np.array([r[0] for r in _RANGES], dtype=np.uint32)
_CLASS_OF_RANGE = np.array([r[1] for r in _RANGES], dtype=np.int64)


@dataclass
class TextStats:
    """Everything the filters measure about one text, computed lazily."""

    text: str

    @cached_property
    def codepoints(self) -> np.ndarray:
        return np.frombuffer(self.text.encode("utf-32-le"), dtype=np.uint32)

    @cached_property
    def n_chars(self) -> int:
        return len(self.text)

    @cached_property
    def _class_histogram(self) -> np.ndarray:
        # one searchsorted + bincount instead of a mask per Unicode block
        return np.bincount(
            _CLASS_OF_RANGE[np.searchsorted(_RANGE_STARTS, self.codepoints, side="right") - 1], minlength=6
        )

    @cached_property
    def n_visible(self) -> int:
        return int(self.codepoints.size - self._class_histogram[_SPACE])

    @cached_property
    def class_counts(self) -> tuple[int, int, int, int]:
        """(hiragana, katakana, kanji, Japanese punctuation/full-width) counts."""
        h = self._class_histogram
        return int(h[_HIRA]), int(h[_KATA]), int(h[_KANJI]), int(h[_PUNCT])

    @cached_property
    def paragraphs(self) -> list[str]:
        return [p.strip() for p in self.text.split("\n") if p.strip()]

    @cached_property
    def sentences(self) -> list[str]:
        return [s.strip() for s in _SENTENCE.findall(self.text) if s.strip()]

    @cached_property
    def paragraph_dups(self) -> tuple[float, float]:
        return _dup_fraction(self.paragraphs)

    @cached_property
    def sentence_dups(self) -> tuple[float, float]:
        return _dup_fraction(self.sentences)

    def ngram_hashes(self, n: int) -> np.ndarray:
        """uint64 hash of every char n-gram, by start position (rolling, built from n-1)."""
        cache = self.__dict__.setdefault("_ngrams", {})
        if n in cache:
            return cache[n]
        cp = self.codepoints.astype(np.uint64)
        if cp.size < n:
            out = np.zeros(0, dtype=np.uint64)
        elif n == 1:
            out = cp
        else:
            prev = self.ngram_hashes(n - 1)
            out = prev[: cp.size - n + 1] * _MUL + cp[n - 1 :]  # uint64 arrays wrap silently: mod 2**64
        cache[n] = out
        return out

    def top_count(self, n: int) -> int:
        """How often the most frequent char n-gram occurs."""
        cache = self.__dict__.setdefault("_top", {})
        if n not in cache:
            cache[n] = int(_kernels().top_count(self.ngram_hashes(n)))
        return cache[n]

    def repeat_cover(self, n: int) -> int:
        """Chars covered by char n-grams that repeat an earlier occurrence in the text."""
        cache = self.__dict__.setdefault("_cover", {})
        if n not in cache:
            cache[n] = int(_kernels().repeat_cover(self.ngram_hashes(n), n))
        return cache[n]


@lru_cache(maxsize=1)
def _kernels():
    """Hash-table counting of n-gram hashes, compiled by numba (one O(n) pass instead of a sort).

    Compiled on first use (cached on disk by numba); ``warm_up()`` compiles them
    before worker processes are forked so the workers inherit the machine code.
    """
    import numba

    @numba.njit(cache=True, nogil=True)
    def _slots(size_hint):
        size = 16
        while size < 2 * size_hint:
            size <<= 1
        bits = 0
        while (1 << bits) < size:
            bits += 1
        return size, np.uint64(64 - bits)

    @numba.njit(cache=True, nogil=True)
    def top_count(keys):
        size, shift = _slots(keys.size)
        table = np.zeros(size, dtype=np.uint64)
        used = np.zeros(size, dtype=np.bool_)
        count = np.zeros(size, dtype=np.int64)
        best = 0
        for i in range(keys.size):
            k = keys[i]
            j = np.int64((k * np.uint64(0x9E3779B97F4A7C15)) >> shift)  # Fibonacci hashing
            while used[j] and table[j] != k:
                j = (j + 1) & (size - 1)
            used[j] = True
            table[j] = k
            count[j] += 1
            if count[j] > best:
                best = count[j]
        return best

    @numba.njit(cache=True, nogil=True)
    def repeat_cover(keys, n):
        size, shift = _slots(keys.size)
        table = np.zeros(size, dtype=np.uint64)
        used = np.zeros(size, dtype=np.bool_)
        covered = 0
        last = -n
        for i in range(keys.size):
            k = keys[i]
            j = np.int64((k * np.uint64(0x9E3779B97F4A7C15)) >> shift)
            seen = False
            while used[j]:
                if table[j] == k:
                    seen = True
                    break
                j = (j + 1) & (size - 1)
            if seen:  # [i, i+n) repeats an earlier n-gram: add the part not covered yet
                covered += min(n, i - last)
                last = i
            else:
                used[j] = True
                table[j] = k
        return covered

    return SimpleNamespace(top_count=top_count, repeat_cover=repeat_cover)


def warm_up() -> None:
    """Compile (or load) the numba kernels now, e.g. before forking workers."""
    k = _kernels()
    probe = np.arange(8, dtype=np.uint64)
    k.top_count(probe)
    k.repeat_cover(probe, 5)


_LAST: tuple[str, TextStats] | None = None


def stats_of(text: str) -> TextStats:
    """The analysis of ``text``; the last one is reused (filters score the same text in turn)."""
    global _LAST
    last = _LAST  # one read: safe if Dask runs filters in threads
    if last is not None and last[0] is text:
        return last[1]
    st = TextStats(text)
    _LAST = (text, st)
    return st


def _dup_fraction(items: list[str]) -> tuple[float, float]:
    """(share of items that repeat an earlier one, share of their chars)."""
    if not items:
        return 0.0, 0.0
    seen: set[str] = set()
    dup_n = dup_chars = total_chars = 0
    for it in items:
        total_chars += len(it)
        if it in seen:
            dup_n += 1
            dup_chars += len(it)
        else:
            seen.add(it)
    return dup_n / len(items), dup_chars / max(total_chars, 1)


class JapaneseFilter(DocumentFilter):
    """Base: a named rule with ``low <= score <= high``."""

    reason = "filter"
    source = ""

    def __init__(self, low: float | None = None, high: float | None = None):
        super().__init__()
        self.low = low
        self.high = high
        self._name = self.reason

    @property
    def name(self) -> str:
        return self.reason

    def quick_keep(self, text: str) -> bool:
        """True when the rule certainly keeps ``text`` (a cheap bound); False = score it."""
        return False

    def keep_document(self, score: float) -> bool:
        if self.low is not None and score < self.low:
            return False
        return not (self.high is not None and score > self.high)

    def describe(self) -> str:
        if self.low is not None and self.high is not None:
            return f"{self.low} <= score <= {self.high}"
        return f"score >= {self.low}" if self.low is not None else f"score <= {self.high}"


class DocLengthFilter(JapaneseFilter):
    reason = "doc_length"
    source = "Swallow: >= 400 chars"

    def score_document(self, text: str) -> float:
        return float(len(text))


class JapaneseRatioFilter(JapaneseFilter):
    reason = "japanese_ratio"
    source = "Swallow: Japanese chars >= 0.5"

    def score_document(self, text: str) -> float:
        st = stats_of(text)
        return sum(st.class_counts) / max(st.n_visible, 1)


class HiraganaRatioFilter(JapaneseFilter):
    reason = "hiragana_ratio"
    source = "Swallow: hiragana >= 0.2 of Japanese letters; Uzushio HiraganaRatio"

    def score_document(self, text: str) -> float:
        hira, kata, kanji, _ = stats_of(text).class_counts
        return hira / max(hira + kata + kanji, 1)


class KatakanaRatioFilter(JapaneseFilter):
    reason = "katakana_ratio"
    source = "Swallow: katakana <= 0.5 of Japanese letters"

    def score_document(self, text: str) -> float:
        hira, kata, kanji, _ = stats_of(text).class_counts
        return kata / max(hira + kata + kanji, 1)


class UrlRatioFilter(JapaneseFilter):
    reason = "url_ratio"
    source = "Uzushio LinkCharRatio high 0.4"

    def score_document(self, text: str) -> float:
        if "://" not in text and "www." not in text:
            return 0.0
        return sum(len(m) for m in _URL.findall(text)) / max(len(text), 1)


class DuplicateLinesFilter(JapaneseFilter):
    reason = "dup_lines"
    source = "Swallow / Gopher: duplicate paragraphs <= 0.30"

    def score_document(self, text: str) -> float:
        return stats_of(text).paragraph_dups[0]


class DuplicateLineCharsFilter(JapaneseFilter):
    reason = "dup_line_chars"
    source = "Swallow / Gopher: chars in duplicate paragraphs <= 0.20"

    def score_document(self, text: str) -> float:
        return stats_of(text).paragraph_dups[1]


class DuplicateSentencesFilter(JapaneseFilter):
    reason = "dup_sentences"
    source = "Swallow: duplicate sentences <= 0.30"

    def score_document(self, text: str) -> float:
        return stats_of(text).sentence_dups[0]


class DuplicateSentenceCharsFilter(JapaneseFilter):
    reason = "dup_sentence_chars"
    source = "Swallow: chars in duplicate sentences <= 0.20"

    def score_document(self, text: str) -> float:
        return stats_of(text).sentence_dups[1]


class TopNgramFilter(JapaneseFilter):
    """Share of chars taken by the most frequent char n-gram (count * n / chars)."""

    source = "Swallow / Gopher: top 2/3/4-gram <= 0.20/0.18/0.16"

    def __init__(self, n: int, high: float):
        self.n = n
        self.reason = f"top_{n}gram"
        super().__init__(high=high)

    def score_document(self, text: str) -> float:
        return stats_of(text).top_count(self.n) * self.n / max(len(text), 1)

    def quick_keep(self, text: str) -> bool:
        # an n-gram occurs at most as often as its 2-char prefix: if even the top bigram's count
        # could not reach the threshold at length n, this rule passes without counting n-grams
        if self.n <= 2 or self.high is None:
            return False
        return stats_of(text).top_count(2) * self.n / max(len(text), 1) <= self.high


class DuplicateNgramFilter(JapaneseFilter):
    """Share of chars covered by repeats of a char n-gram seen earlier in the text."""

    source = "Swallow / Gopher: duplicate 5..10-gram chars <= 0.15..0.10"

    def __init__(self, n: int, high: float):
        self.n = n
        self.reason = f"dup_{n}gram"
        super().__init__(high=high)

    def score_document(self, text: str) -> float:
        st = stats_of(text)
        score = st.repeat_cover(self.n) / max(len(text), 1)
        st.__dict__.setdefault("_dup_cover", {})[self.n] = score
        return score

    def quick_keep(self, text: str) -> bool:
        # If the n-gram at s repeats the one at q < s, every m-gram inside it (m < n) repeats too,
        # so the chars covered by repeated n-grams are a subset of those covered by repeated m-grams.
        if self.high is None:
            return False
        known = stats_of(text).__dict__.get("_dup_cover", {})
        return any(m < self.n and cover <= self.high for m, cover in known.items())


class MeanSentenceLengthFilter(JapaneseFilter):
    reason = "mean_sentence_length"
    source = "Swallow: mean sentence length in [20, 90] chars"

    def score_document(self, text: str) -> float:
        sents = stats_of(text).sentences
        return sum(map(len, sents)) / len(sents) if sents else 0.0


class MaxSentenceLengthFilter(JapaneseFilter):
    reason = "max_sentence_length"
    source = "Swallow: longest sentence <= 200 chars"

    def score_document(self, text: str) -> float:
        sents = stats_of(text).sentences
        return float(max(map(len, sents))) if sents else 0.0


class EllipsisSentencesFilter(JapaneseFilter):
    reason = "ellipsis_sentences"
    source = "Swallow: sentences ending in an ellipsis <= 0.2"

    def score_document(self, text: str) -> float:
        sents = stats_of(text).sentences
        if not sents:
            return 0.0
        return sum(s.endswith(_ELLIPSIS_END) for s in sents) / len(sents)


def build_filters(cfg: FilterConfig) -> list[JapaneseFilter]:
    """The enabled filters, in the order they are applied (cheap and specific first)."""
    out: list[JapaneseFilter] = []
    if cfg.min_chars is not None or cfg.max_chars is not None:
        out.append(DocLengthFilter(low=cfg.min_chars, high=cfg.max_chars))
    if cfg.min_japanese_ratio is not None:
        out.append(JapaneseRatioFilter(low=cfg.min_japanese_ratio))
    if cfg.min_hiragana_ratio is not None:
        out.append(HiraganaRatioFilter(low=cfg.min_hiragana_ratio))
    if cfg.max_katakana_ratio is not None:
        out.append(KatakanaRatioFilter(high=cfg.max_katakana_ratio))
    if cfg.max_url_char_ratio is not None:
        out.append(UrlRatioFilter(high=cfg.max_url_char_ratio))
    if cfg.max_dup_line_ratio is not None:
        out.append(DuplicateLinesFilter(high=cfg.max_dup_line_ratio))
    if cfg.max_dup_line_char_ratio is not None:
        out.append(DuplicateLineCharsFilter(high=cfg.max_dup_line_char_ratio))
    if cfg.max_dup_sentence_ratio is not None:
        out.append(DuplicateSentencesFilter(high=cfg.max_dup_sentence_ratio))
    if cfg.max_dup_sentence_char_ratio is not None:
        out.append(DuplicateSentenceCharsFilter(high=cfg.max_dup_sentence_char_ratio))
    for n, high in sorted((cfg.max_top_ngram_ratio or {}).items()):
        out.append(TopNgramFilter(int(n), float(high)))
    for n, high in sorted((cfg.max_dup_ngram_ratio or {}).items()):
        out.append(DuplicateNgramFilter(int(n), float(high)))
    if cfg.min_mean_sentence_chars is not None or cfg.max_mean_sentence_chars is not None:
        out.append(MeanSentenceLengthFilter(low=cfg.min_mean_sentence_chars, high=cfg.max_mean_sentence_chars))
    if cfg.max_sentence_chars is not None:
        out.append(MaxSentenceLengthFilter(high=cfg.max_sentence_chars))
    if cfg.max_ellipsis_sentence_ratio is not None:
        out.append(EllipsisSentencesFilter(high=cfg.max_ellipsis_sentence_ratio))
    return out


def first_failure(text: str, filters: list[JapaneseFilter]) -> tuple[int, float] | None:
    """(index of the first filter ``text`` fails, its score), or None when it passes all."""
    for i, f in enumerate(filters):
        if f.quick_keep(text):
            continue
        score = f.score_document(text)
        if not f.keep_document(score):
            return i, score
    return None
