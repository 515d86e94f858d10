"""Every tokenize backend gives exactly the HF tokenizer's ids, in the mode jpqwen/data/tokenizer.py defines:
special-token strings in a document are text, non-special added tokens (<think>, <tool_call>, ...) keep their
ids = HF with split_special_tokens=True."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import unicodedata

import numpy as np
import pytest

from jpqwen.data.tokenizer import BACKENDS, QwenTokenizer, tokenizer_identity
from tests.data.conftest import SAMPLE_DIR

EOD = 151643

EDGE_CASES = [
    # empty-ish documents
    "",
    " ",
    "\n",
    "\u3000",
    "\t\n \r\n",
    # width, NFC / non-NFC (the tokenizer's normalizer is NFC; the pipeline's NFC may be switched off)
    "ｶﾀｶﾅ　全角スペース　と半角ｽﾍﾟｰｽ",
    "が (NFD: か + ゛) → " + "\u304b\u3099",
    unicodedata.normalize("NFD", "がぎぐげご パピプペポ ヴ 髙 é ñ"),
    "e\u0301 and é; ﬁ ligature; ㈱ ①②",
    "\u0338 < \u0338 > \u0338 a<\u0338b",  # < + U+0338 composes to ≮ under NFC
    # special-token strings are text
    "literal <|endoftext|> and <|im_start|> in text stay text",
    "<|im_start|>user\nこんにちは<|im_end|>\n<|vision_start|><|image_pad|><|vision_end|>",
    "<|endoftext|><|endoftext|>",
    # non-special added tokens keep their ids; matched in the raw text, NFC around them
    "<think>考える</think>答え",
    "<tool_call>{}</tool_call><tool_response>ok</tool_response>",
    "a<|fim_prefix|>b<|fim_suffix|>c<|fim_middle|>d<|fim_pad|><|repo_name|>r<|file_sep|>f",
    "<tool_call>\u0338 and <think>\u0338",  # NFC of the whole text would turn '>' + U+0338 into '≯'
    "\u0338<tool_call>\u0338",
    "e\u0301<think>e\u0301",
    "<think><think></think>",
    "<think <tool_call <|fim_prefix| </think",  # near misses are text
    " <think> \n<tool_call>\n",
    # whitespace runs (tiktoken's regex overflows its stack near 1,000,000 spaces: see the pipeline test)
    " " * 100_000,
    "\n" * 50_000,
    "\t" * 30_000 + "x",
    "日本語" + " \u3000\t" * 20_000 + "テキスト",
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


def _one_megabyte() -> str:
    """A ~1 MB document: the sample's Japanese articles back to back, with added-token strings inside."""
    parts = [t for t in _corpus_texts() if t.strip()]
    text = "\n".join(parts)
    text = (text + "<think>\n") * (1_000_000 // len(text.encode("utf-8")) + 1)
    return text.encode("utf-8")[:1_050_000].decode("utf-8", errors="ignore")


@pytest.fixture(scope="module")
def texts() -> list[str]:
    out = _corpus_texts() + EDGE_CASES + [_one_megabyte()]
    assert len(out) > 200 and len(out[-1].encode("utf-8")) > 1_000_000
    return out


@pytest.fixture(scope="module")
def reference(qwen_tokenizer_dir, texts) -> list[list[int]]:
    """HF ``tokenizers`` read straight from tokenizer.json, encode_special_tokens = split_special_tokens=True."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(qwen_tokenizer_dir / "tokenizer.json"))
    tok.encode_special_tokens = True
    return [tok.encode(t, add_special_tokens=False).ids for t in texts]


@pytest.fixture(scope="module")
def tokenizers(qwen_tokenizer_dir) -> dict[str, QwenTokenizer]:
    return {b: QwenTokenizer(qwen_tokenizer_dir, b) for b in BACKENDS}


def test_transformers_split_special_tokens_is_the_reference(qwen_tokenizer_dir, reference, texts):
    """The reference is what transformers gives with split_special_tokens=True (the model's own tokenizer)."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(qwen_tokenizer_dir))
    for text, want in zip(EDGE_CASES, reference[-len(EDGE_CASES) - 1 : -1], strict=True):
        assert text in texts
        assert tok(text, add_special_tokens=False, split_special_tokens=True)["input_ids"] == want, text[:60]
    # and the other mode really differs: without it, <|endoftext|> in text would become the EOD
    assert EOD in tok("a<|endoftext|>b", add_special_tokens=False)["input_ids"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_ids_equal_hf_on_every_test_document(tokenizers, backend, texts, reference):
    tok = tokenizers[backend]
    for text, want in zip(texts, reference, strict=True):
        assert tok.encode(text) == want, (backend, text[:80])


def test_fastokens_without_its_nfc_normalizer_on_normalized_text(qwen_tokenizer_dir, texts):
    """Pass 1 hands the tokenizer normalized (NFC) text, so fastokens runs without tokenizer.json's NFC
    normalizer (nfc_input): on every test document, normalized as pass 1 does, the ids equal HF's.
    That the normalizer is really out shows on a text that is not NFC, which only HF composes."""
    from tokenizers import Tokenizer

    from jpqwen.data.config import NormalizeConfig
    from jpqwen.data.normalize import normalize_text

    hf = Tokenizer.from_file(str(qwen_tokenizer_dir / "tokenizer.json"))
    hf.encode_special_tokens = True
    tok = QwenTokenizer(qwen_tokenizer_dir, "fastokens", nfc_input=True)
    assert tok.skips_nfc
    normalized = [normalize_text(t, NormalizeConfig()) for t in texts]
    assert sum(a != b for a, b in zip(texts, normalized, strict=True)) > 5  # (normalizing changed some)
    flat = tok.encode_documents(normalized)
    for text, ids in zip(normalized, flat, strict=True):
        assert ids.tolist() == hf.encode(text, add_special_tokens=False).ids + [EOD], text[:80]
    nfd = "が\u3099か\u3099"  # (NFC: "がが")
    assert tok.encode(nfd) != hf.encode(nfd, add_special_tokens=False).ids
    assert QwenTokenizer(qwen_tokenizer_dir, "fastokens").encode(nfd) == hf.encode(nfd, add_special_tokens=False).ids


def test_nfc_input_keeps_any_other_normalizer(qwen_tokenizer_dir, tmp_path):
    """Only a normalizer that is exactly NFC is taken out; another (here NFC inside a Sequence, which
    fastokens reads too) stays, the file used as is."""
    from tokenizers import Tokenizer

    spec = json.loads((qwen_tokenizer_dir / "tokenizer.json").read_text(encoding="utf-8"))
    spec["normalizer"] = {"type": "Sequence", "normalizers": [{"type": "NFC"}]}
    (tmp_path / "tokenizer.json").write_text(json.dumps(spec), encoding="utf-8")
    tok = QwenTokenizer(tmp_path, "fastokens", nfc_input=True)
    assert not tok.skips_nfc
    hf = Tokenizer.from_file(str(tmp_path / "tokenizer.json"))
    hf.encode_special_tokens = True
    text = "が\u3099か\u3099"  # not NFC: the normalizer composes it
    assert tok.encode(text) == hf.encode(text, add_special_tokens=False).ids


@pytest.mark.parametrize("backend", BACKENDS)
def test_array_and_batch_encodings_equal_list_encoding(tokenizers, backend, texts, reference):
    """What the writer stores (int32 arrays, one call per text or one batch) is the ids + EOD."""
    tok = tokenizers[backend]
    batch = tok.encode_documents(texts)
    assert len(batch) == len(texts)
    for text, want, arr_b in zip(texts, reference, batch, strict=True):
        arr = tok.encode_document_array(text)
        assert arr.dtype == np.int32 and arr.tolist() == want + [EOD], (backend, text[:80])
        assert arr_b.dtype == np.int32 and arr_b.tolist() == want + [EOD], (backend, text[:80])
        assert tok.encode_document(text) == want + [EOD]


def test_special_token_strings_are_text_and_added_tokens_are_ids(tokenizers):
    for tok in tokenizers.values():
        assert tok.eod_id == EOD
        for text in ("a<|endoftext|>b", "<|endoftext|>", "<|im_start|>x<|im_end|>"):
            assert not set(tok.encode(text)) & set(range(EOD, EOD + 14)), (tok.backend, text)  # no special id
        assert tok.encode("<think>x</think>") == [151667, 87, 151668], tok.backend
        assert tok.encode("<tool_call>") == [151657], tok.backend


def test_one_million_spaces(tokenizers):
    """tiktoken's regex runs out of backtracking stack on ~1,000,000 spaces (its numpy call raises
    ValueError; encode_ordinary panics, see below); the pipeline quarantines such a document
    (tests/data/test_data_sample.py). fastokens and hf encode it, equally."""
    text = " " * 1_000_000
    want = tokenizers["hf"].encode(text)
    assert tokenizers["fastokens"].encode(text) == want
    assert tokenizers["fastokens"].encode_documents([text])[0].tolist() == want + [EOD]
    with pytest.raises(ValueError, match="stack"):
        tokenizers["tiktoken"].encode_document_array(text)
    assert tokenizers["tiktoken"].encode("まだ使える") == tokenizers["hf"].encode("まだ使える")  # still usable


class _OrdinaryTiktoken:
    """The real tiktoken Encoding called through ``encode_ordinary``, whose failure is a Rust panic."""

    backend = "tiktoken-encode_ordinary"

    def __init__(self, tok: QwenTokenizer):
        self.tok = tok

    def encode_document_array(self, text: str) -> np.ndarray:
        return np.asarray(self.tok._enc.encode_ordinary(text) + [EOD], dtype=np.int32)

    def encode_documents_flat(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        docs = [self.encode_document_array(t) for t in texts]
        return np.concatenate(docs), np.array([d.size for d in docs])


def test_a_tokenizer_panic_loses_only_that_document(tokenizers):
    """pyo3's PanicException is a BaseException, not an Exception: encode_all catches it, retries the
    batch one document at a time and reports the failing one; Ctrl-C still goes through."""
    from jpqwen.data.writer import encode_all

    tok = _OrdinaryTiktoken(tokenizers["tiktoken"])
    with pytest.raises(BaseException) as info:  # noqa: B017
        tok.encode_document_array(" " * 1_000_000)
    assert not isinstance(info.value, Exception) and type(info.value).__name__ == "PanicException"
    pieces, lengths, errors = encode_all(tok, ["前", " " * 1_000_000, "後"])
    want = [tokenizers["hf"].encode_document("前"), tokenizers["hf"].encode_document("後")]
    assert np.concatenate(pieces).tolist() == want[0] + want[1]
    assert lengths.tolist() == [len(want[0]), 0, len(want[1])]
    assert errors[0] is None and errors[2] is None
    assert "PanicException" in errors[1] and "StackOverflow" in errors[1]
    # no failure: one batch call, the same ids back to back
    pieces, lengths, errors = encode_all(tok, ["前", "後"])
    assert len(pieces) == 1 and pieces[0].tolist() == want[0] + want[1] and errors == [None, None]

    class Interrupted(_OrdinaryTiktoken):
        def encode_document_array(self, text):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        encode_all(Interrupted(tokenizers["tiktoken"]), ["x"])


def _in_worker(args: tuple) -> tuple[int, int, list[int], int]:
    from jpqwen.data.writer import get_tokenizer

    tokenizer_dir, text = args
    tok = get_tokenizer(tokenizer_dir, "fastokens")
    ids = tok.encode_documents([text] * 3)[2].tolist()
    return os.getpid(), tok.pid, ids, len(os.listdir("/proc/self/task"))


@pytest.mark.parametrize("threads", ["1", "2"])
def test_forked_workers_and_fastokens(qwen_tokenizer_dir, monkeypatch, threads):
    """With one BPE thread (the default) fastokens starts no thread of its own, so forked workers use
    the parent's tokenizer, built and used before the fork, and get the same ids. With a Rust thread
    pool (FASTOKENS_BPE_THREADS=2), which a fork does not carry over, each worker builds its own."""
    from concurrent.futures import ProcessPoolExecutor

    from jpqwen.data import writer

    monkeypatch.setenv("FASTOKENS_BPE_THREADS", threads)
    monkeypatch.setattr(writer, "_TOKENIZERS", {})
    text = "日本語の文章。<think>考え</think>" * 2000
    tasks_before = len(os.listdir("/proc/self/task"))
    parent = writer.get_tokenizer(str(qwen_tokenizer_dir), "fastokens")
    want = parent.encode_documents([text] * 4)[1].tolist()
    assert parent.pid == os.getpid()
    assert parent.fork_safe == (threads == "1")
    if threads == "1":  # what makes the fork safe: building and using it started no thread
        assert len(os.listdir("/proc/self/task")) == tasks_before
    with ProcessPoolExecutor(2, mp_context=mp.get_context("fork")) as pool:
        results = list(pool.map(_in_worker, [(str(qwen_tokenizer_dir), text)] * 8, timeout=120))
    assert {pid for pid, _, _, _ in results} - {os.getpid()}
    for pid, built_in, ids, _ in results:
        assert built_in == (os.getpid() if threads == "1" else pid)
        assert ids == want


def test_identity_is_about_ids_not_file_bytes(qwen_tokenizer_dir, tmp_path):
    spec = json.loads((qwen_tokenizer_dir / "tokenizer.json").read_text(encoding="utf-8"))
    spec["truncation"] = {"max_length": 7}  # irrelevant to ids
    (tmp_path / "tokenizer.json").write_text(json.dumps(spec), encoding="utf-8")
    assert tokenizer_identity(tmp_path) == tokenizer_identity(qwen_tokenizer_dir)
    spec["added_tokens"][-1]["special"] = True  # <think> as text instead of an id: other ids
    (tmp_path / "tokenizer.json").write_text(json.dumps(spec), encoding="utf-8")
    assert tokenizer_identity(tmp_path) != tokenizer_identity(qwen_tokenizer_dir)
    spec["added_tokens"][-1]["special"] = False
    spec["model"]["vocab"]["!"] = 99  # a different vocabulary is a different identity
    (tmp_path / "tokenizer.json").write_text(json.dumps(spec), encoding="utf-8")
    assert tokenizer_identity(tmp_path) != tokenizer_identity(qwen_tokenizer_dir)


def test_unknown_backend_is_an_input_error(qwen_tokenizer_dir):
    from jpqwen.errors import InputError

    with pytest.raises(InputError, match="fastokens, tiktoken, hf"):
        QwenTokenizer(qwen_tokenizer_dir, "sentencepiece")


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_tokenizer_without_eod_is_an_input_error(qwen_tokenizer_dir, tmp_path, backend):
    from jpqwen.errors import InputError

    spec = json.loads((qwen_tokenizer_dir / "tokenizer.json").read_text(encoding="utf-8"))
    spec["added_tokens"] = [t for t in spec["added_tokens"] if t["content"] != "<|endoftext|>"]
    (tmp_path / "tokenizer.json").write_text(json.dumps(spec), encoding="utf-8")
    with pytest.raises(InputError, match=r"has no <\|endoftext\|> token"):
        QwenTokenizer(tmp_path, backend)
