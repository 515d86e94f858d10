"""Japanese quality filters (Swallow / Uzushio family) as NeMo Curator ``DocumentFilter``s.

Each filter has one scalar score and one threshold, so ``nemo_curator.ScoreFilter``
can run it on a Dask ``DocumentDataset`` exactly as the local executor runs it,
and the data card can say which single rule removed a document (its name is
the rejection reason). :func:`build_filters` returns them in the order they are
applied; the first rule a document fails is its reason.

Each rule is written once, as a plain class (``DocLengthRule``...: score, threshold,
NeMo Curator's ``score_document`` / ``keep_document`` API). Its ``DocumentFilter``
(``DocLengthFilter``...) is the same class with NeMo Curator's base added, made on first
use: NeMo Curator's ``doc_filter`` module imports its Dask dataset classes, pandas with
them (~1 CPU-second), which the local executor never needs. The local executor runs the
rules (:func:`build_rules`); the curator executor, and anyone importing a ``*Filter`` name,
get the ``DocumentFilter``s (:func:`build_filters`); both give the same scores and decisions.

Character classes (Unicode blocks):
  hiragana U+3041-309F; katakana U+30A0-30FF, U+31F0-31FF, half-width U+FF66-FF9F;
  kanji U+3400-4DBF, U+4E00-9FFF, U+F900-FAFF, U+3005-3007 (々〆〇);
  Japanese punctuation/symbols U+3000-303F, full-width forms U+FF01-FF65.
"Japanese letters" = hiragana + katakana + kanji; "Japanese chars" adds the
punctuation/full-width forms. Ratios of characters are over non-whitespace chars.

Score functions share one analysis of the text (code points as a numpy array; one
numba pass for the class histogram, paragraphs and sentences; n-gram hashes), cached
for the last text seen, so twenty-one filters cost about one pass (kernels.py).
"""

from __future__ import annotations

import re
import threading
from functools import lru_cache

import numpy as np

from jpqwen.data.config import FilterConfig
from jpqwen.data.imports import import_module

_URL = re.compile(r"(?:https?|ftp)://[^\s　<>\"']+|www\.[^\s　<>\"']+")


# Character classes as sorted code point ranges: (first code point, class).
_OTHER, _SPACE, _HIRA, _KATA, _KANJI, _PUNCT = range(6)
_RANGES = [
    (0x0, _OTHER), (0x9, _SPACE), (0xB, _OTHER), (0xD, _SPACE), (0xE, _OTHER), (0x20, _SPACE), (0x21, _OTHER),
    (0x3000, _SPACE), (0x3001, _PUNCT), (0x3005, _KANJI), (0x3008, _PUNCT), (0x3040, _OTHER), (0x3041, _HIRA),
    (0x30A0, _KATA), (0x3100, _OTHER), (0x31F0, _KATA), (0x3200, _OTHER), (0x3400, _KANJI), (0x4DC0, _OTHER),
    (0x4E00, _KANJI), (0xA000, _OTHER), (0xF900, _KANJI), (0xFB00, _OTHER), (0xFF01, _PUNCT), (0xFF66, _KATA),
    (0xFFA0, _OTHER), (0x20000, _KANJI), (0x30000, _OTHER),
]  # fmt: skip


class TextStats:
    """Everything the filters measure about one text, computed lazily (numba kernels, kernels.py).

    Plain attributes rather than ``functools.cached_property`` (which takes a lock on every
    first access: ~0.3 s per 100 MB here); the derived numbers are cheap reads of ``profile``.
    """

    __slots__ = ("text", "_codepoints", "_profile", "ngrams", "tops", "covers", "dup_cover")

    def __init__(self, text: str):
        self.text = text
        self._codepoints: np.ndarray | None = None
        self._profile: list[int] | None = None
        self.ngrams: dict[int, np.ndarray] = {}
        self.tops: dict[int, int] = {}
        self.covers: dict[int, int] = {}
        self.dup_cover: dict[int, float] = {}  # n -> DuplicateNgramRule score, for the next rule's bound

    @property
    def codepoints(self) -> np.ndarray:
        if self._codepoints is None:
            self._codepoints = np.frombuffer(self.text.encode("utf-32-le"), dtype=np.uint32)
        return self._codepoints

    @property
    def n_chars(self) -> int:
        return len(self.text)

    @property
    def profile(self) -> list[int]:
        """One pass: class histogram, paragraph and sentence counts (layout: kernels.N_OTHER ...)."""
        if self._profile is None:
            self._profile = kernels().text_profile(self.codepoints, _flags(), _scratch()).tolist()
        return self._profile

    @property
    def n_visible(self) -> int:
        return len(self.text) - self.profile[_SPACE]

    @property
    def class_counts(self) -> tuple[int, int, int, int]:
        """(hiragana, katakana, kanji, Japanese punctuation/full-width) counts."""
        p = self.profile
        return p[_HIRA], p[_KATA], p[_KANJI], p[_PUNCT]

    @property
    def paragraph_dups(self) -> tuple[float, float]:
        """(share of paragraphs that repeat an earlier one, share of their chars); paragraphs are
        the non-empty stripped lines."""
        p = self.profile
        return _dup_fraction(p[_PAR_COUNT], p[_PAR_CHARS], p[_PAR_DUP], p[_PAR_DUP_CHARS])

    @property
    def sentence_dups(self) -> tuple[float, float]:
        p = self.profile
        return _dup_fraction(p[_SENT_COUNT], p[_SENT_CHARS], p[_SENT_DUP], p[_SENT_DUP_CHARS])

    @property
    def sentence_lengths(self) -> tuple[int, int, int, int]:
        """(sentences, their chars, the longest, how many end in an ellipsis); sentences are the
        stripped non-empty matches of ``[^。．！？!?\\n]+[。．！？!?]*``."""
        p = self.profile
        return p[_SENT_COUNT], p[_SENT_CHARS], p[_SENT_MAX], p[_SENT_ELLIPSIS]

    @property
    def top_char(self) -> int:
        """How often the most frequent character occurs (bounds every n-gram's count)."""
        return self.profile[_TOP_CHAR]

    def ngram_hashes(self, n: int) -> np.ndarray:
        """uint64 hash of every char n-gram, by start position (rolling polynomial, mod 2**64)."""
        h = self.ngrams.get(n)
        if h is None:
            h = self.ngrams[n] = kernels().ngram_hashes(self.codepoints, n)
        return h

    def top_count(self, n: int) -> int:
        """How often the most frequent char n-gram occurs."""
        c = self.tops.get(n)
        if c is None:
            c = self.tops[n] = int(kernels().top_count(self.ngram_hashes(n)))
        return c

    def repeat_cover(self, n: int) -> int:
        """Chars covered by char n-grams that repeat an earlier occurrence in the text."""
        c = self.covers.get(n)
        if c is None:
            c = self.covers[n] = int(kernels().repeat_cover(self.ngram_hashes(n), n))
        return c


# text_profile's layout (kernels.py), repeated here so the filters need not import numba
(_PAR_COUNT, _PAR_CHARS, _PAR_DUP, _PAR_DUP_CHARS, _SENT_COUNT, _SENT_CHARS, _SENT_DUP, _SENT_DUP_CHARS) = range(6, 14)
_TOP_CHAR, _TOP_CHAR_CODE, _SECOND_CHAR = 16, 17, 18
_SENT_MAX, _SENT_ELLIPSIS = 14, 15


@lru_cache(maxsize=1)
def kernels():
    """jpqwen.data.kernels (numba), imported on first use."""
    from jpqwen.data import kernels as k

    return k


@lru_cache(maxsize=1)
def _flags() -> np.ndarray:
    return kernels().flags_table(_RANGES)


_LOCAL = threading.local()


def _scratch() -> np.ndarray:
    """text_profile's per-code-point counter (zero between calls), one per thread."""
    table = getattr(_LOCAL, "scratch", None)
    if table is None:
        table = _LOCAL.scratch = np.zeros(0x110000, dtype=np.uint32)
    return table


def warm_up() -> None:
    """Compile the numba kernels now, or load them from numba's disk cache (e.g. before forking workers)."""
    kernels().warm_up(_flags())


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


def needs_normalizing(text: str, nfc: bool, strip_control: bool, collapse_spaces: bool, blank_run: int) -> bool:
    """normalize's fast check (kernels.needs_normalizing) on ``text``, whose code points the
    filters then reuse (``text`` is the next one they score when it needs no change)."""
    cp = stats_of(text).codepoints
    return bool(kernels().needs_normalizing(cp, _flags(), nfc, strip_control, collapse_spaces, blank_run))


def _dup_fraction(count: int, chars: int, dup: int, dup_chars: int) -> tuple[float, float]:
    """(share of items that repeat an earlier one, share of their chars)."""
    if not count:
        return 0.0, 0.0
    return dup / count, dup_chars / max(chars, 1)


class JapaneseRule:
    """Base: a named rule with ``low <= score <= high`` (``JapaneseFilter``: the same as a
    NeMo Curator ``DocumentFilter``)."""

    reason = "filter"
    source = ""
    kind: int | None = None  # its rule in kernels.batch_rules (None: scored one text at a time)
    n = 0  # the n of an n-gram rule

    def __init__(self, low: float | None = None, high: float | None = None):
        super().__init__()
        self.low = low
        self.high = high
        self._name = self.reason

    @property
    def name(self) -> str:
        return self.reason

    def score_document(self, text: str) -> float:
        """NeMo Curator's API: the rule's score of ``text``."""
        return self.score(stats_of(text))

    def score(self, st: TextStats) -> float:
        """The score from the text's analysis (``st.text`` is the text)."""
        raise NotImplementedError

    def quick_keep(self, text: str) -> bool:
        """True when the rule certainly keeps ``text`` (a cheap bound); False = score it."""
        return self.quick(stats_of(text))

    def quick(self, st: TextStats) -> bool:
        """``quick_keep`` from the text's analysis."""
        return False

    def keep_document(self, score: float) -> bool:
        if self.low is not None and score < self.low:
            return False
        return not (self.high is not None and score > self.high)

    def args(self) -> dict:
        """The constructor's arguments that make this rule again."""
        return {"low": self.low, "high": self.high}

    def describe(self) -> str:
        if self.low is not None and self.high is not None:
            return f"{self.low} <= score <= {self.high}"
        return f"score >= {self.low}" if self.low is not None else f"score <= {self.high}"


class DocLengthRule(JapaneseRule):
    kind = 0  # kernels.R_*
    reason = "doc_length"
    source = "Swallow: >= 400 chars"

    def score(self, st: TextStats) -> float:
        return float(len(st.text))


class JapaneseRatioRule(JapaneseRule):
    kind = 1  # kernels.R_*
    reason = "japanese_ratio"
    source = "Swallow: Japanese chars >= 0.5"

    def score(self, st: TextStats) -> float:
        return sum(st.class_counts) / max(st.n_visible, 1)


class HiraganaRatioRule(JapaneseRule):
    kind = 2  # kernels.R_*
    reason = "hiragana_ratio"
    source = "Swallow: hiragana >= 0.2 of Japanese letters; Uzushio HiraganaRatio"

    def score(self, st: TextStats) -> float:
        hira, kata, kanji, _ = st.class_counts
        return hira / max(hira + kata + kanji, 1)


class KatakanaRatioRule(JapaneseRule):
    kind = 3  # kernels.R_*
    reason = "katakana_ratio"
    source = "Swallow: katakana <= 0.5 of Japanese letters"

    def score(self, st: TextStats) -> float:
        hira, kata, kanji, _ = st.class_counts
        return kata / max(hira + kata + kanji, 1)


def url_ratio(text: str) -> float:
    if "://" not in text and "www." not in text:
        return 0.0
    return sum(len(m) for m in _URL.findall(text)) / max(len(text), 1)


class UrlRatioRule(JapaneseRule):
    kind = 4  # kernels.R_*
    reason = "url_ratio"
    source = "Uzushio LinkCharRatio high 0.4"

    def score(self, st: TextStats) -> float:
        return url_ratio(st.text)


class DuplicateLinesRule(JapaneseRule):
    kind = 5  # kernels.R_*
    reason = "dup_lines"
    source = "Swallow / Gopher: duplicate paragraphs <= 0.30"

    def score(self, st: TextStats) -> float:
        return st.paragraph_dups[0]


class DuplicateLineCharsRule(JapaneseRule):
    kind = 6  # kernels.R_*
    reason = "dup_line_chars"
    source = "Swallow / Gopher: chars in duplicate paragraphs <= 0.20"

    def score(self, st: TextStats) -> float:
        return st.paragraph_dups[1]


class DuplicateSentencesRule(JapaneseRule):
    kind = 7  # kernels.R_*
    reason = "dup_sentences"
    source = "Swallow: duplicate sentences <= 0.30"

    def score(self, st: TextStats) -> float:
        return st.sentence_dups[0]


class DuplicateSentenceCharsRule(JapaneseRule):
    kind = 8  # kernels.R_*
    reason = "dup_sentence_chars"
    source = "Swallow: chars in duplicate sentences <= 0.20"

    def score(self, st: TextStats) -> float:
        return st.sentence_dups[1]


class TopNgramRule(JapaneseRule):
    """Share of chars taken by the most frequent char n-gram (count * n / chars)."""

    kind = 9  # kernels.R_*

    source = "Swallow / Gopher: top 2/3/4-gram <= 0.20/0.18/0.16"

    def __init__(self, n: int, high: float):
        self.n = n
        self.reason = f"top_{n}gram"
        super().__init__(high=high)

    def args(self) -> dict:
        return {"n": self.n, "high": self.high}

    def score(self, st: TextStats) -> float:
        return st.top_count(self.n) * self.n / max(len(st.text), 1)

    def quick(self, st: TextStats) -> bool:
        # An n-gram occurs at most as often as its first character and as its 2-char prefix: when
        # even those counts stay within the threshold at length n, the rule passes without counting
        # n-grams. Else only the n-grams starting with a frequent character are counted (the same
        # decision as the full count: kernels.heavy_top_count); score_document counts them all.
        if self.high is None:
            return False
        chars = max(len(st.text), 1)
        if st.top_char * self.n / chars <= self.high:
            return True
        if self.n > 2 and 2 in st.tops and st.tops[2] * self.n / chars <= self.high:
            return True
        # the n-grams that start with a character frequent enough to break the rule, counted alone
        if st.profile[_SECOND_CHAR] * self.n / chars <= self.high:  # only the top character is
            heavy = kernels().lead_top_count(st.codepoints, self.n, st.profile[_TOP_CHAR_CODE])
        else:
            heavy = kernels().heavy_top_count(st.codepoints, self.n, float(self.high), _scratch())
        return heavy * self.n / chars <= self.high


class DuplicateNgramRule(JapaneseRule):
    """Share of chars covered by repeats of a char n-gram seen earlier in the text."""

    kind = 10  # kernels.R_*

    source = "Swallow / Gopher: duplicate 5..10-gram chars <= 0.15..0.10"

    def __init__(self, n: int, high: float):
        self.n = n
        self.reason = f"dup_{n}gram"
        super().__init__(high=high)

    def args(self) -> dict:
        return {"n": self.n, "high": self.high}

    def score(self, st: TextStats) -> float:
        score = st.repeat_cover(self.n) / max(len(st.text), 1)
        st.dup_cover[self.n] = score
        return score

    def quick(self, st: TextStats) -> bool:
        # If the n-gram at s repeats the one at q < s, every m-gram inside it (m < n) repeats too,
        # so the chars covered by repeated n-grams are a subset of those covered by repeated m-grams.
        if self.high is None:
            return False
        known = st.dup_cover
        return any(m < self.n and cover <= self.high for m, cover in known.items())


class MeanSentenceLengthRule(JapaneseRule):
    kind = 11  # kernels.R_*
    reason = "mean_sentence_length"
    source = "Swallow: mean sentence length in [20, 90] chars"

    def score(self, st: TextStats) -> float:
        count, chars, _, _ = st.sentence_lengths
        return chars / count if count else 0.0


class MaxSentenceLengthRule(JapaneseRule):
    kind = 12  # kernels.R_*
    reason = "max_sentence_length"
    source = "Swallow: longest sentence <= 200 chars"

    def score(self, st: TextStats) -> float:
        count, _, longest, _ = st.sentence_lengths
        return float(longest) if count else 0.0


class EllipsisSentencesRule(JapaneseRule):
    kind = 13  # kernels.R_*
    reason = "ellipsis_sentences"
    source = "Swallow: sentences ending in an ellipsis <= 0.2"

    def score(self, st: TextStats) -> float:
        count, _, _, ellipsis = st.sentence_lengths
        return ellipsis / count if count else 0.0


def build_rules(cfg: FilterConfig, document_filters: bool = False) -> list[JapaneseRule]:
    """The enabled rules, in the order they are applied (cheap and specific first); as NeMo
    Curator ``DocumentFilter``s with ``document_filters`` (:func:`build_filters`)."""
    c = _document_filters() if document_filters else _RULE_CLASSES
    out: list[JapaneseRule] = []
    if cfg.min_chars is not None or cfg.max_chars is not None:
        out.append(c["DocLength"](low=cfg.min_chars, high=cfg.max_chars))
    if cfg.min_japanese_ratio is not None:
        out.append(c["JapaneseRatio"](low=cfg.min_japanese_ratio))
    if cfg.min_hiragana_ratio is not None:
        out.append(c["HiraganaRatio"](low=cfg.min_hiragana_ratio))
    if cfg.max_katakana_ratio is not None:
        out.append(c["KatakanaRatio"](high=cfg.max_katakana_ratio))
    if cfg.max_url_char_ratio is not None:
        out.append(c["UrlRatio"](high=cfg.max_url_char_ratio))
    if cfg.max_dup_line_ratio is not None:
        out.append(c["DuplicateLines"](high=cfg.max_dup_line_ratio))
    if cfg.max_dup_line_char_ratio is not None:
        out.append(c["DuplicateLineChars"](high=cfg.max_dup_line_char_ratio))
    if cfg.max_dup_sentence_ratio is not None:
        out.append(c["DuplicateSentences"](high=cfg.max_dup_sentence_ratio))
    if cfg.max_dup_sentence_char_ratio is not None:
        out.append(c["DuplicateSentenceChars"](high=cfg.max_dup_sentence_char_ratio))
    for n, high in sorted((cfg.max_top_ngram_ratio or {}).items()):
        out.append(c["TopNgram"](int(n), float(high)))
    for n, high in sorted((cfg.max_dup_ngram_ratio or {}).items()):
        out.append(c["DuplicateNgram"](int(n), float(high)))
    if cfg.min_mean_sentence_chars is not None or cfg.max_mean_sentence_chars is not None:
        out.append(c["MeanSentenceLength"](low=cfg.min_mean_sentence_chars, high=cfg.max_mean_sentence_chars))
    if cfg.max_sentence_chars is not None:
        out.append(c["MaxSentenceLength"](high=cfg.max_sentence_chars))
    if cfg.max_ellipsis_sentence_ratio is not None:
        out.append(c["EllipsisSentences"](high=cfg.max_ellipsis_sentence_ratio))
    return out


def build_filters(cfg: FilterConfig) -> list[JapaneseRule]:
    """:func:`build_rules` as NeMo Curator ``DocumentFilter``s (``DocLengthFilter``...)."""
    return build_rules(cfg, document_filters=True)


def as_document_filter(rule: JapaneseRule) -> JapaneseRule:
    """``rule`` as its NeMo Curator ``DocumentFilter`` (the same thresholds); one already is as it is."""
    if isinstance(rule, _document_filters()["DocumentFilter"]):
        return rule
    if type(rule) not in _RULE_CLASSES.values():
        raise TypeError(f"{type(rule).__name__} is not one of the Japanese rules and not a DocumentFilter")
    return _document_filters()[type(rule).__name__.removesuffix("Rule")](**rule.args())


def first_failure(text: str, filters: list[JapaneseRule]) -> tuple[int, float] | None:
    """(index of the first filter ``text`` fails, its score), or None when it passes all.
    The same as ``quick_keep`` / ``score_document`` / ``keep_document`` in turn (tested), on one
    analysis of the text."""
    st = stats_of(text)
    for i, f in enumerate(filters):
        if f.quick(st):
            continue
        score = f.score(st)
        if not f.keep_document(score):
            return i, score
    return None


# the rules kernels.batch_rules implements, by name (exactly these classes and their DocumentFilters:
# a subclass may score otherwise)
_RULE_CLASSES: dict[str, type[JapaneseRule]] = {
    cls.__name__.removesuffix("Rule"): cls
    for cls in (
        DocLengthRule,
        JapaneseRatioRule,
        HiraganaRatioRule,
        KatakanaRatioRule,
        UrlRatioRule,
        DuplicateLinesRule,
        DuplicateLineCharsRule,
        DuplicateSentencesRule,
        DuplicateSentenceCharsRule,
        TopNgramRule,
        DuplicateNgramRule,
        MeanSentenceLengthRule,
        MaxSentenceLengthRule,
        EllipsisSentencesRule,
    )
}
_FILTER_NAMES = frozenset({"JapaneseFilter", *(f"{name}Filter" for name in _RULE_CLASSES)})


@lru_cache(maxsize=1)
def _document_filters() -> dict[str, type]:
    """The rules as NeMo Curator ``DocumentFilter`` classes: each rule with ``DocumentFilter`` added
    to its bases, by rule name; ``JapaneseFilter`` (their common base) and ``DocumentFilter`` too."""
    # == nemo_curator.filters.DocumentFilter, without the package's __init__ (see imports.py)
    document_filter = import_module("nemo_curator.filters.doc_filter").DocumentFilter
    base = type(
        "JapaneseFilter",
        (JapaneseRule, document_filter),
        {"__module__": __name__, "__doc__": "Base: a Japanese rule as a NeMo Curator ``DocumentFilter``."},
    )
    out: dict[str, type] = {"JapaneseFilter": base, "DocumentFilter": document_filter}
    for name, rule in _RULE_CLASSES.items():
        # (module and name as written here: pickle finds the class again through __getattr__ below)
        attrs = {"__module__": __name__, "__qualname__": f"{name}Filter", "__doc__": rule.__doc__, "_rule_of": rule}
        out[name] = out[f"{name}Filter"] = type(f"{name}Filter", (rule, base), attrs)
    return out


def __getattr__(name: str):  # PEP 562: DocLengthFilter & co. are made on first use (see the module docstring)
    if name in _FILTER_NAMES:
        return _document_filters()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _kernel_knows(f: object) -> bool:
    """Whether ``f`` is exactly one of the rules kernels.batch_rules implements, or its DocumentFilter."""
    cls = type(f)
    return cls in _RULE_CLASSES.values() or cls.__dict__.get("_rule_of") in _RULE_CLASSES.values()


def _rule_plan(filters: list[JapaneseRule]) -> tuple[np.ndarray, ...] | None:
    """The filters as kernels.batch_rules' arrays (kinds, ns, lows, highs; NaN = no bound), or None
    when one of them is not a rule the kernel knows (a subclass or another DocumentFilter)."""
    if not all(_kernel_knows(f) for f in filters):
        return None
    kinds = np.array([f.kind for f in filters], dtype=np.int64)
    ns = np.array([f.n for f in filters], dtype=np.int64)
    lows = np.array([np.nan if f.low is None else f.low for f in filters], dtype=np.float64)
    highs = np.array([np.nan if f.high is None else f.high for f in filters], dtype=np.float64)
    return kinds, ns, lows, highs


def first_failures(
    texts: list[str], codepoints: list[np.ndarray], filters: list[JapaneseRule], minhash_n: int = 0
) -> tuple[list[tuple[int, float] | None], np.ndarray | None, np.ndarray | None]:
    """:func:`first_failure` of every text of a chunk in one numba call (no Python per rule and
    text), given each text's code points; and, when ``minhash_n`` > 0, the ``minhash_n``-gram
    hashes of the texts that pass, packed (``grams``, and ``offsets`` with one span per text;
    empty for the others). Falls back to one text at a time (grams None) for rules the kernel
    does not know. The same results as :func:`first_failure` (tests compare them)."""
    plan = _rule_plan(filters)
    if plan is None or not texts:
        return [first_failure(t, filters) for t in texts], None, None
    kinds, ns, lows, highs = plan
    sizes = np.fromiter((c.size for c in codepoints), dtype=np.int64, count=len(codepoints))
    offsets = np.zeros(len(texts) + 1, dtype=np.int64)
    np.cumsum(sizes, out=offsets[1:])
    cp = np.concatenate(codepoints) if codepoints else np.zeros(0, dtype=np.uint32)
    urls = np.zeros(len(texts))
    if (kinds == UrlRatioRule.kind).any():  # (Python's regex only for the texts that may have a URL)
        for i in np.flatnonzero(kernels().url_hints(cp, offsets)).tolist():
            urls[i] = url_ratio(texts[i])
    room = np.empty(cp.size if minhash_n > 0 else 0, dtype=np.uint64)  # (numpy: see batch_rules)
    fail, score, grams, gram_off = kernels().batch_rules(
        cp, offsets, _flags(), _scratch(), kinds, ns, lows, highs, urls, minhash_n, room
    )
    out: list[tuple[int, float] | None] = [
        None if i < 0 else (i, sc) for i, sc in zip(fail.tolist(), score.tolist(), strict=True)
    ]
    return out, (grams if minhash_n > 0 else None), (gram_off if minhash_n > 0 else None)
