"""The quality rules, one by one, against plain-Python reference definitions."""

from __future__ import annotations

import json
import random
from collections import Counter

import pytest

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
                out.append(normalize_text(json.loads(raw)["text"], NormalizeConfig()))
            except (ValueError, KeyError, TypeError):
                continue
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
