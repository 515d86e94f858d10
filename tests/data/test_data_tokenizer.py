"""The tiktoken fast path gives exactly the HF tokenizer's ids."""

from __future__ import annotations

import json

import numpy as np
import pytest

from jpqwen.data.tokenizer import QwenTokenizer, tokenizer_identity
from tests.data.conftest import SAMPLE_DIR

EDGE_CASES = [
    "",
    " ",
    "ｶﾀｶﾅ　全角スペース　と半角ｽﾍﾟｰｽ",
    "が (NFD: か + ゛) → " + "\u304b\u3099",
    "e\u0301 and é; ﬁ ligature; ㈱ ①②",
    "literal <|endoftext|> and <|im_start|> in text stay text",
    "tabs\tand\r\nCRLF\n\n\nblank lines   trailing   ",
    "emoji 😀👍🏽 and 𠮷野家 (outside the BMP)",
    "数字1234567890と12.5%、URL https://example.jp/a?b=c#d",
    "I'm we'll they've DON'T 'quoted'",
    "一" * 3000,
]


def _corpus_texts() -> list[str]:
    texts = []
    for path in sorted(SAMPLE_DIR.glob("*/*.jsonl")):
        for raw in path.read_bytes().split(b"\n"):
            try:
                doc = json.loads(raw)
            except ValueError:
                continue
            if isinstance(doc, dict):
                texts += [v for v in doc.values() if isinstance(v, str)]
                for msg in doc.get("messages", []) if isinstance(doc.get("messages"), list) else []:
                    if isinstance(msg, dict) and isinstance(msg.get("content"), str):
                        texts.append(msg["content"])
    return texts


@pytest.fixture(scope="module")
def tokenizers(qwen_tokenizer_dir):
    return QwenTokenizer(qwen_tokenizer_dir, "tiktoken"), QwenTokenizer(qwen_tokenizer_dir, "hf")


def test_tiktoken_ids_equal_hf_on_every_test_document(tokenizers):
    fast, hf = tokenizers
    texts = _corpus_texts() + EDGE_CASES
    assert len(texts) > 200
    for text in texts:
        assert fast.encode(text) == hf.encode(text), text[:80]


def test_special_token_strings_in_text_are_not_special(tokenizers):
    fast, hf = tokenizers
    for tok in tokenizers:
        ids = tok.encode("a<|endoftext|>b")
        assert tok.eod_id == 151643 and tok.eod_id not in ids
        assert tok.encode_document("a")[-1] == 151643
    assert fast.encode_document("テスト") == hf.encode_document("テスト")


def test_identity_is_about_ids_not_file_bytes(qwen_tokenizer_dir, tmp_path):
    spec = json.loads((qwen_tokenizer_dir / "tokenizer.json").read_text(encoding="utf-8"))
    spec["truncation"] = {"max_length": 7}  # irrelevant to ids
    (tmp_path / "tokenizer.json").write_text(json.dumps(spec), encoding="utf-8")
    assert tokenizer_identity(tmp_path) == tokenizer_identity(qwen_tokenizer_dir)
    spec["model"]["vocab"]["!"] = 99  # a different vocabulary is a different identity
    (tmp_path / "tokenizer.json").write_text(json.dumps(spec), encoding="utf-8")
    assert tokenizer_identity(tmp_path) != tokenizer_identity(qwen_tokenizer_dir)


def test_array_encoding_equals_list_encoding(tokenizers):
    """What the writer stores (int32 arrays, tiktoken's buffer path) is encode_document's ids."""
    for tok in tokenizers:
        for text in _corpus_texts() + EDGE_CASES:
            arr = tok.encode_document_array(text)
            assert arr.dtype == np.int32 and arr.tolist() == tok.encode_document(text), text[:80]
