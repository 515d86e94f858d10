"""Bits per character against an independent per-token computation."""

from __future__ import annotations

import math

import pytest

from jpqwen.errors import InputError
from jpqwen.hf.bpc import bits_per_char, read_jsonl_texts, window_plan

TEXT = "平安京は、794年に桓武天皇によって山城国に定められた日本の都である。"


@pytest.fixture(scope="module")
def tiny(tiny_qwen_dir):
    from jpqwen.hf.models import load_model

    return load_model(tiny_qwen_dir, device="cpu", dtype="float32")


def reference_nll(lm, text: str, window: int, stride: int) -> float:
    """Token by token: run the model on the context and take log_softmax of the last position.

    The context of the id at position t (position 0 is <|endoftext|>) is ids[k*stride : t] for the
    first window k (ids[k*stride : k*stride + window]) that contains t.
    """
    import torch

    tok = lm.tokenizer
    ids = [tok.convert_tokens_to_ids("<|endoftext|>"), *tok(text, add_special_tokens=False)["input_ids"]]
    total = 0.0
    for t in range(1, len(ids)):
        k = max(0, math.ceil((t - window + 1) / stride))
        context = torch.tensor([ids[k * stride : t]])
        with torch.no_grad():
            logp = torch.log_softmax(lm.model(context).logits[0, -1].double(), dim=-1)
        total -= float(logp[ids[t]])
    return total


@pytest.mark.parametrize(("window", "stride"), [(4096, 2048), (12, 5), (8, 7)])
def test_bpc_matches_a_per_token_loop(tiny, window, stride):
    result = bits_per_char(tiny, [TEXT], window=window, stride=stride)
    expected_nll = reference_nll(tiny, TEXT, window, stride)
    assert result.characters == len(TEXT)
    assert result.tokens == len(tiny.tokenizer(TEXT, add_special_tokens=False)["input_ids"])
    assert result.nll_nats == pytest.approx(expected_nll, rel=1e-4)
    assert result.bits_per_char == pytest.approx(expected_nll / (math.log(2) * len(TEXT)), rel=1e-4)


def test_short_windows_give_a_different_score(tiny):
    """Context matters: the sliding window really changes what the model sees."""
    full = bits_per_char(tiny, [TEXT], window=4096, stride=2048)
    chunked = bits_per_char(tiny, [TEXT], window=4, stride=3)
    assert full.nll_nats != pytest.approx(chunked.nll_nats, rel=1e-6)


def test_empty_documents_are_counted_not_scored(tiny):
    result = bits_per_char(tiny, [TEXT, ""], window=64, stride=32)
    assert result.documents == 1 and result.skipped_empty == 1
    with pytest.raises(InputError, match="no non-empty"):
        bits_per_char(tiny, [""], window=64, stride=32)


def test_window_plan_predicts_every_position_once():
    for n in (2, 3, 10, 37):
        for window, stride in ((4, 2), (5, 4), (8, 3), (64, 32)):
            covered = [p for _, end, first in window_plan(n, window, stride) for p in range(first, end)]
            assert covered == list(range(1, n))
            for begin, end, first in window_plan(n, window, stride):
                assert end - begin <= window and first > begin
                if begin > 0:
                    assert first - begin >= window - stride  # guaranteed context
    with pytest.raises(InputError):
        window_plan(10, 4, 4)


def test_bad_jsonl_names_file_and_line(tmp_path):
    p = tmp_path / "v.jsonl"
    p.write_text('{"text": "ok"}\n{"text": \n', encoding="utf-8")
    with pytest.raises(InputError, match=r"v\.jsonl:2"):
        read_jsonl_texts(p)
    p.write_text('{"text": "ok"}\n{"body": "x"}\n', encoding="utf-8")
    with pytest.raises(InputError, match=r"v\.jsonl:2: expected an object with a string field 'text'"):
        read_jsonl_texts(p)
