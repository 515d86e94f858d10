"""The quality rules, one by one, against plain-Python reference definitions."""

from __future__ import annotations

import json
import random
import re
from collections import Counter

import numpy as np
import pytest

from jpqwen.data import filters as jfilters
from jpqwen.data.config import FilterConfig, NormalizeConfig
from jpqwen.data.filters import (
    DocLengthFilter,
    DuplicateLinesFilter,
    DuplicateNgramFilter,
    EllipsisSentencesFilter,
    HiraganaRatioFilter,
    JapaneseRatioFilter,
    KatakanaRatioFilter,
    MaxSentenceLengthFilter,
    MeanSentenceLengthFilter,
    TopNgramFilter,
    UrlRatioFilter,
    build_filters,
    first_failure,
)
from jpqwen.data.normalize import normalize_text
from tests.data.conftest import SAMPLE_DIR


def ref_top(text: str, n: int) -> float:
    grams = Counter(text[i : i + n] for i in range(len(text) - n + 1))
    return max(grams.values()) * n / len(text) if grams else 0.0


def ref_dup_cover(text: str, n: int) -> float:
    seen: set[str] = set()
    covered = [False] * len(text)
    for i in range(len(text) - n + 1):
        g = text[i : i + n]
        if g in seen:
            for j in range(i, i + n):
                covered[j] = True
        seen.add(g)
    return sum(covered) / max(len(text), 1)


def _texts() -> list[str]:
    out = []
    for path in sorted((SAMPLE_DIR / "ja_wiki").glob("*.jsonl")):
        for raw in path.read_bytes().split(b"\n"):
            try:
                text = json.loads(raw)["text"]
            except (ValueError, KeyError, TypeError):
                continue
            if isinstance(text, str):  # (the planted malformed lines are quarantined before normalize)
                out.append(normalize_text(text, NormalizeConfig()))
    rng = random.Random(0)
    out += ["".join(rng.choice("あいうアイ漢字") for _ in range(rng.randint(0, 300))) for _ in range(30)]
    out += ["", "a", "ああああああああああ", "abcabcabcabc" * 5]
    return out


@pytest.mark.parametrize("n", [2, 3, 4])
def test_top_ngram_matches_reference(n):
    f = TopNgramFilter(n, 0.5)
    for t in _texts():
        assert f.score_document(t) == pytest.approx(ref_top(t, n)), t[:40]


@pytest.mark.parametrize("n", [5, 6, 8, 10])
def test_duplicate_ngram_matches_reference(n):
    f = DuplicateNgramFilter(n, 0.5)
    for t in _texts():
        assert f.score_document(t) == pytest.approx(ref_dup_cover(t, n)), t[:40]


def test_repeat_cover_kernel_on_raw_keys():
    """repeat_cover's hash table on keys that stress it: the key 0 (its empty-slot marker, kept
    apart), keys that all land on one slot (linear probing wraps round the table) and random ones,
    against the same definition over the keys themselves."""
    from jpqwen.data.filters import kernels

    def ref(keys: list[int], n: int) -> int:
        seen: set[int] = set()
        covered: set[int] = set()
        for i, k in enumerate(keys):
            if k in seen:
                covered.update(range(i, i + n))
            seen.add(k)
        return len(covered)

    rng = random.Random(3)
    same_slot = [(j << 40) * 0x9E3779B97F4A7C15 % 2**64 for j in range(1, 9)]  # (not all one slot: wraps anyway)
    cases = [[], [0], [0, 0], [0, 5, 0, 5], [7, 0, 7, 0, 0]]
    cases += [[rng.choice([0, 1, 2**63, 2**64 - 1]) for _ in range(rng.randint(1, 40))] for _ in range(50)]
    cases += [[rng.choice(same_slot + [0]) for _ in range(rng.randint(1, 60))] for _ in range(50)]
    cases += [[rng.randrange(30) * 0x100000001B3 for _ in range(rng.randint(1, 500))] for _ in range(50)]
    cases += [[rng.randrange(2**64) for _ in range(2000)] + [rng.randrange(2**64)] * 3]
    for keys in cases:
        for n in (1, 5, 10):
            got = kernels().repeat_cover(np.array(keys, dtype=np.uint64), n)
            assert got == ref(keys, n), (keys[:20], n)


def test_quick_bounds_never_change_a_decision():
    filters = build_filters(FilterConfig())
    for t in _texts():
        slow = next(
            ((i, f.score_document(t)) for i, f in enumerate(filters) if not f.keep_document(f.score_document(t))), None
        )
        assert first_failure(t, filters) == slow


def test_character_class_ratios():
    text = "ひらがなカタカナ漢字。 abc"  # 4 hiragana, 4 katakana, 2 kanji, 1 punct, 3 latin, 1 space
    assert JapaneseRatioFilter(low=0.5).score_document(text) == pytest.approx(11 / 14)
    assert HiraganaRatioFilter(low=0.2).score_document(text) == pytest.approx(4 / 10)
    assert KatakanaRatioFilter(high=0.5).score_document(text) == pytest.approx(4 / 10)
    assert HiraganaRatioFilter(low=0.2).score_document("ｶﾀｶﾅだけ") == pytest.approx(2 / 6)


def test_lines_sentences_urls_length():
    assert DuplicateLinesFilter(high=0.3).score_document("a\nb\na\na") == pytest.approx(2 / 4)
    assert MeanSentenceLengthFilter(low=20, high=90).score_document("あいう。えお。") == pytest.approx(3.5)
    assert MaxSentenceLengthFilter(high=200).score_document("あいう。えお！か") == 4
    assert EllipsisSentencesFilter(high=0.2).score_document("これは…\nあれ。\nそれ...") == pytest.approx(2 / 3)
    url = "https://example.jp/a"
    assert UrlRatioFilter(high=0.4).score_document(f"見て{url}") == pytest.approx(len(url) / (len(url) + 2))
    f = DocLengthFilter(low=400)
    assert not f.keep_document(f.score_document("短い")) and f.keep_document(f.score_document("長" * 400))


# ---- the numba kernels and the guarded normalizer against plain-Python definitions -------------
_SENTENCE = re.compile(r"[^。．！？!?\n]+[。．！？!?]*")


def ref_dups(items: list[str]) -> tuple[float, float]:
    if not items:
        return 0.0, 0.0
    seen: set[str] = set()
    dup_n = dup_chars = total = 0
    for it in items:
        total += len(it)
        if it in seen:
            dup_n += 1
            dup_chars += len(it)
        seen.add(it)
    return dup_n / len(items), dup_chars / max(total, 1)


def ref_profile(text: str) -> dict:
    paragraphs = [p.strip() for p in text.split("\n") if p.strip()]
    sentences = [s.strip() for s in _SENTENCE.findall(text) if s.strip()]
    ellipsis = ("…", "...", "‥", "・・・")
    return {
        "paragraph_dups": ref_dups(paragraphs),
        "sentence_dups": ref_dups(sentences),
        "sentence_lengths": (
            len(sentences),
            sum(map(len, sentences)),
            max(map(len, sentences), default=0),
            sum(s.endswith(ellipsis) for s in sentences),
        ),
    }


def ref_classes(text: str) -> tuple[int, int, int, int, int]:
    """(hiragana, katakana, kanji, punctuation, visible) by the Unicode blocks in filters.py's docstring."""

    def cls(c: int) -> str:
        if c in (0x9, 0xA, 0xD, 0x20, 0x3000):
            return "space"
        if 0x3041 <= c <= 0x309F:
            return "hira"
        if 0x30A0 <= c <= 0x30FF or 0x31F0 <= c <= 0x31FF or 0xFF66 <= c <= 0xFF9F:
            return "kata"
        if 0x3005 <= c <= 0x3007 or 0x3400 <= c <= 0x4DBF or 0x4E00 <= c <= 0x9FFF or 0xF900 <= c <= 0xFAFF:
            return "kanji"
        if 0x20000 <= c <= 0x2FFFF:
            return "kanji"
        if 0x3001 <= c <= 0x303F or 0xFF01 <= c <= 0xFF65:
            return "punct"
        return "other"

    counts = Counter(cls(ord(ch)) for ch in text)
    return counts["hira"], counts["kata"], counts["kanji"], counts["punct"], len(text) - counts["space"]


def ref_ngram_hashes(text: str, n: int) -> list[int]:
    cps = [ord(c) for c in text]
    out = []
    for i in range(len(cps) - n + 1):
        h = 0
        for c in cps[i : i + n]:
            h = (h * 0x100000001B3 + c) % 2**64
        out.append(h)
    return out


def ref_normalize(text: str, cfg: NormalizeConfig) -> str:
    """normalize_text's definition: every substitution always runs; NFC last."""
    import unicodedata

    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if cfg.strip_control:
        text = re.sub("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b-\u200d\u2060\ufeff]", "", text)
    if cfg.collapse_spaces:
        text = re.sub(" *\n *", "\n", re.sub("[ \t\u00a0]+", " ", text)).strip()
    if cfg.max_blank_lines >= 0:
        limit = cfg.max_blank_lines + 1
        text = re.sub(f"\n{{{limit + 1},}}", "\n" * limit, text)
    if cfg.nfc:
        text = unicodedata.normalize("NFC", text)
    return text


def _tricky_texts(count: int = 400) -> list[str]:
    """Random texts over the characters the kernels treat specially (whitespace kinds, sentence
    ends, ellipses, line breaks, astral kanji, controls) and repeated lines/sentences."""
    rng = random.Random(1)
    alphabet = list("あいアイ漢字ｶ。．！？!?.・…‥\n\n \u3000\t\xa0\x85\u2028\x0b\r\u200bab𠮷😀") + [
        "\u30fb\u30fb\u30fb",
        "\u3099",  # combining dakuten: か + it = が under NFC
        "\u0301",  # combining acute
        "か",
    ]
    pieces = ["同じ文。", "同じ行\n", " 同じ行 \n", "それ...", "\n\n\n\n"]
    out = []
    for _ in range(count):
        k = rng.randint(0, 80)
        out.append("".join(rng.choice(alphabet) if rng.random() < 0.8 else rng.choice(pieces) for _ in range(k)))
    return out


def test_text_kernels_match_python_definitions():
    from jpqwen.data.filters import TextStats

    for t in _texts() + _tricky_texts():
        st = TextStats(t)
        ref = ref_profile(t)
        assert st.paragraph_dups == ref["paragraph_dups"], repr(t)
        assert st.sentence_dups == ref["sentence_dups"], repr(t)
        assert st.sentence_lengths == ref["sentence_lengths"], repr(t)
        hira, kata, kanji, punct, visible = ref_classes(t)
        assert st.class_counts == (hira, kata, kanji, punct) and st.n_visible == visible, repr(t)
        for n in (1, 2, 5, 7):
            assert st.ngram_hashes(n).tolist() == ref_ngram_hashes(t, n), (repr(t), n)


def test_guarded_normalizer_equals_running_every_substitution():
    cfgs = [NormalizeConfig(), NormalizeConfig(max_blank_lines=0), NormalizeConfig(max_blank_lines=-1)]
    for t in _texts() + _tricky_texts() + ["  a  \n  b\t\tc\xa0\xa0d \n\n\n\n e  ", "\r\n\r\n\r\nx \r y"]:
        for cfg in cfgs:
            assert normalize_text(t, cfg) == ref_normalize(t, cfg), (repr(t), cfg)


def test_normalized_text_is_always_nfc():
    """What the tokenizer's nfc_input relies on: with nfc on, every normalized text is NFC, also where
    stripping a character leaves a letter next to a combining mark."""
    import unicodedata

    assert normalize_text("か\u200b\u3099ね e\ufeff\u0301", NormalizeConfig()) == "がね é"
    texts = _texts() + _tricky_texts(2000)
    assert sum(not unicodedata.is_normalized("NFC", t) for t in texts) > 50  # the inputs include non-NFC
    for t in texts:
        for cfg in (NormalizeConfig(), NormalizeConfig(collapse_spaces=False, max_blank_lines=-1)):
            assert unicodedata.is_normalized("NFC", normalize_text(t, cfg)), repr(t)


def test_profile_layout_matches_the_kernel():
    from jpqwen.data import filters, kernels

    names = ["PAR_COUNT", "PAR_CHARS", "PAR_DUP", "PAR_DUP_CHARS", "SENT_COUNT", "SENT_CHARS", "SENT_DUP"]
    names += ["SENT_DUP_CHARS", "SENT_MAX", "SENT_ELLIPSIS", "TOP_CHAR", "TOP_CHAR_CODE", "SECOND_CHAR"]
    assert [getattr(filters, "_" + n) for n in names] == [getattr(kernels, n) for n in names]
    assert (filters._SPACE, filters._HIRA, filters._KATA, filters._KANJI, filters._PUNCT) == (
        kernels.N_SPACE,
        kernels.N_HIRA,
        kernels.N_KATA,
        kernels.N_KANJI,
        kernels.N_PUNCT,
    )


def test_top_character_counts_match_counter():
    from jpqwen.data.filters import TextStats

    for t in _texts() + _tricky_texts():
        st = TextStats(t)
        counts = Counter(t).most_common()
        top = counts[0][1] if counts else 0
        second = counts[1][1] if len(counts) > 1 else 0
        assert (st.top_char, st.profile[jfilters._SECOND_CHAR]) == (top, second), repr(t)
        if counts:
            assert Counter(t)[chr(st.profile[jfilters._TOP_CHAR_CODE])] == top, repr(t)


@pytest.mark.parametrize("n", [2, 3, 4])
def test_top_ngram_quick_keep_is_the_exact_decision(n):
    """quick_keep counts only n-grams that start with a frequent character (one or several):
    over many thresholds it must agree with the full count, both ways."""
    texts = _texts() + _tricky_texts() + ["abababababxyz" * 7, "ああいあうあえあお" * 9, "のの" + "あい" * 30]
    paths = Counter()
    for high in (0.02, 0.05, 0.08, 0.1, 0.16, 0.2, 0.3, 0.5):
        f = TopNgramFilter(n, high)
        for t in texts:
            st = jfilters.stats_of(t)
            chars = max(len(t), 1)
            if st.top_char * n / chars > high:
                paths["lead" if st.profile[jfilters._SECOND_CHAR] * n / chars <= high else "heavy"] += 1
            assert f.quick_keep(t) == (ref_top(t, n) <= high), (repr(t[:60]), n, high)
    assert paths["lead"] and paths["heavy"]  # both counting kernels were exercised


def test_control_flags_match_the_normalizer_regex():
    import numpy as np

    from jpqwen.data import kernels
    from jpqwen.data.filters import _flags
    from jpqwen.data.normalize import _CONTROL

    flags = _flags()
    points = [c for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]  # every code point but surrogates
    text = "".join(map(chr, points))
    control = np.zeros(0x110000, dtype=bool)
    control[[points[m.start()] for m in _CONTROL.finditer(text)]] = True
    assert ((flags & kernels.IS_CONTROL) > 0)[points].tolist() == control[points].tolist()
    blank = np.zeros(0x110000, dtype=bool)
    blank[[0x9, 0xA0]] = True
    assert ((flags & kernels.IS_BLANK) > 0).tolist() == blank.tolist()


def test_normalizer_fast_path_on_every_setting():
    """normalize_text's numba check (skip when nothing would change) against every step run in turn."""
    cfgs = [
        NormalizeConfig(nfc=False),
        NormalizeConfig(strip_control=False),
        NormalizeConfig(collapse_spaces=False),
        NormalizeConfig(max_blank_lines=3),
        NormalizeConfig(nfc=False, strip_control=False, collapse_spaces=False, max_blank_lines=-1),
    ]
    extra = ["a \nb", "a\n b", "a  b", " a", "a ", "\u3000a", "a\u3000", "a\x85b", "e\u0301", "a\n\n\n\n\nb", ""]
    extra += ["\u212b", "\u0958", "\u0344", "\u1100\u1161", "\uac00\u11a8", "か\u3099", "\u0301a", "a\u0323\u0301"]
    for t in _texts()[:60] + _tricky_texts() + extra:
        for cfg in [NormalizeConfig(), *cfgs]:
            assert normalize_text(t, cfg) == ref_normalize(t, cfg), (repr(t), cfg)


def test_nfc_check_flags_cover_everything_nfc_could_change():
    """normalize's fast path skips NFC for a text without an NFC_CHECK character, so a text of other
    characters must always be NFC. Checked over the whole code point range, one character at a time,
    and for every pair of unflagged characters that take part in a composition (both halves of
    every canonical decomposition, the precomposed characters, Hangul jamo and syllables, kana)."""
    import unicodedata

    from jpqwen.data.filters import kernels

    k = kernels()
    flagged = set(k.nfc_check_points(0x110000))
    assert flagged == set(k.nfc_check_points())  # none above NFC_CHECK_END
    assert all(unicodedata.is_normalized("NFC", chr(c)) for c in range(0x110000) if c not in flagged)
    parts = set(range(0x1100, 0x1200)) | set(range(0xAC00, 0xAC40)) | set(range(0x3041, 0x3100))
    for c in range(0x30000):
        d = unicodedata.decomposition(chr(c))
        if d and not d.startswith("<"):
            parts |= {c, *(int(x, 16) for x in d.split())}
    pool = sorted(parts - flagged)
    assert len(pool) > 1000
    chars = [chr(c) for c in pool]
    for x in chars:
        bad = [y for y in chars if not unicodedata.is_normalized("NFC", x + y)]
        assert not bad, (hex(ord(x)), [hex(ord(y)) for y in bad[:5]])
    table = jfilters._flags()
    assert all(table[c] & k.NFC_CHECK for c in flagged) and sum(bool(v & k.NFC_CHECK) for v in table) == len(flagged)


@pytest.mark.parametrize(
    "cfg",
    [
        FilterConfig(),
        FilterConfig(max_top_ngram_ratio={2: 0.03, 3: 0.05, 4: 0.04}),
        FilterConfig(min_chars=None, max_dup_ngram_ratio={5: 0.05, 6: 0.3, 7: 0.02}),
        FilterConfig(min_chars=10, max_chars=5000, min_hiragana_ratio=None, max_url_char_ratio=0.01),
    ],
    ids=["default", "tight-top-ngram", "dup-ngram-bounds", "length-url"],
)
def test_first_failures_in_one_kernel_call_equal_one_text_at_a_time(cfg):
    """The local executor's batched rules (kernels.batch_rules) against first_failure per text,
    and the MinHash n-grams it packs for the texts that pass against TextStats.ngram_hashes."""
    import numpy as np

    texts = _texts() + _tricky_texts() + ["https://example.com/a " * 30 + "あ" * 300, "www.x.jp です。" * 50]
    filters = build_filters(cfg)
    cps = [np.frombuffer(t.encode("utf-32-le"), dtype=np.uint32) for t in texts]
    got, grams, offsets = jfilters.first_failures(texts, cps, filters, minhash_n=5)
    assert got == [first_failure(t, filters) for t in texts]
    assert sum(g is None for g in got) > 0 and sum(g is not None for g in got) > 0
    for i, t in enumerate(texts):
        span = grams[offsets[i] : offsets[i + 1]]
        want = jfilters.stats_of(t).ngram_hashes(5) if got[i] is None else np.zeros(0, np.uint64)
        assert span.tolist() == want.tolist(), repr(t[:40])


def test_first_failures_fall_back_for_rules_the_kernel_does_not_know():
    import numpy as np

    class Longer(jfilters.DocLengthFilter):  # a subclass may score otherwise: scored one text at a time
        def score(self, st):
            return float(len(st.text) * 2)

    filters = [Longer(low=100)]
    texts = ["あ" * 60, "あ" * 40]
    cps = [np.frombuffer(t.encode("utf-32-le"), dtype=np.uint32) for t in texts]
    got, grams, _ = jfilters.first_failures(texts, cps, filters, minhash_n=5)
    assert got == [None, (0, 80.0)] and grams is None


def test_rule_kinds_match_the_kernel():
    from jpqwen.data import kernels

    names = ["LENGTH", "JAPANESE", "HIRAGANA", "KATAKANA", "URL", "DUP_LINES", "DUP_LINE_CHARS"]
    names += ["DUP_SENTENCES", "DUP_SENTENCE_CHARS", "TOP_NGRAM", "DUP_NGRAM", "MEAN_SENTENCE", "MAX_SENTENCE"]
    names += ["ELLIPSIS"]
    assert [cls.kind for cls in jfilters._RULE_CLASSES.values()] == [getattr(kernels, "R_" + n) for n in names]


def test_minhash_bands_from_packed_ngrams_equal_bands_from_texts():
    """process_chunk hands MinHash the n-grams first_failures packed; a text shorter than one n-gram
    (its own token then) makes bands_many fall back to one text at a time: same bands either way."""
    import numpy as np

    from jpqwen.data.config import NearDedupConfig
    from jpqwen.data.shards import MinHasher

    hasher = MinHasher(NearDedupConfig())
    for texts in (_texts()[:40], _texts()[:40] + ["あい"]):
        cps = [np.frombuffer(t.encode("utf-32-le"), dtype=np.uint32) for t in texts]
        filters = build_filters(FilterConfig()) if len(texts) == 40 else []  # (no rules: the short text stays)
        got, grams, offsets = jfilters.first_failures(texts, cps, filters, minhash_n=5)
        cand = np.array([g is None for g in got])
        kept = [t for t, c in zip(texts, cand, strict=True) if c]
        packed = (grams, np.append(offsets[:-1][cand], offsets[-1]))
        assert "あい" not in texts or "あい" in kept
        assert hasher.bands_many(kept, packed).tolist() == hasher.bands_many(kept).tolist()


def test_url_hints_kernel_equals_substring_tests():
    """first_failures runs url_ratio's regex only where the kernel finds "://" or "www.": the same
    texts as Python's two substring tests, at every position (start, middle, end, cut short)."""
    import numpy as np

    from jpqwen.data.filters import kernels

    rng = random.Random(3)
    texts = ["", "w", "www", "www.", "://", ":/", "a://", "xwww.", "ww.w", "http://x", "見る www.example.jp"]
    pieces = [":", "/", "w", ".", "あ", "a", ":/", "ww", "://", "www."]
    texts += ["".join(rng.choice(pieces) for _ in range(rng.randint(0, 8))) for _ in range(3000)]
    cps = [np.frombuffer(t.encode("utf-32-le"), dtype=np.uint32) for t in texts]
    offsets = np.concatenate(([0], np.cumsum([c.size for c in cps]))).astype(np.int64)
    got = kernels().url_hints(np.concatenate(cps), offsets).tolist()
    want = [("://" in t or "www." in t) for t in texts]
    assert got == want
    assert 300 < sum(want) < 2900  # both outcomes well represented
