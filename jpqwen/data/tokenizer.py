"""The Qwen2.5 tokenizer for ``make data``: three backends that give the same ids.

- ``fastokens`` (default; ~5x tiktoken per CPU-second on Japanese text, see
  bench/results/bpe_survey.md): the ``fastokens`` library reading the model's
  ``tokenizer.json``.
- ``tiktoken``: a tiktoken ``Encoding`` built from the same file: the byte-level BPE
  vocabulary (ranks = ids, which is how Qwen's merges are ordered), the same
  pre-tokenizer regex, NFC first (the HF normalizer).
- ``hf``: the ``tokenizers`` library (what NeMo and transformers use): the reference.

What a document's text becomes (every backend; ``tests/data/test_data_tokenizer.py``
compares each with HF on every document of the test corpora and the edge cases):

- **Text is text.** A special token's string inside a document (``special: true`` in
  tokenizer.json: ``<|endoftext|>``, ``<|im_start|>``, ``<|im_end|>``, ``<|vision_start|>`` ...)
  is encoded as ordinary text, so a document can never produce the end-of-document
  or a chat control token. The pipeline appends the real ``<|endoftext|>`` (id
  151643) after each document itself.
- **Non-special added tokens keep their ids.** The added tokens marked ``special:
  false`` (``<tool_call>``, ``</tool_call>``, ``<tool_response>``, ``<think>``,
  ``<|fim_prefix|>``, ``<|fim_middle|>``, ``<|fim_suffix|>``, ``<|fim_pad|>``,
  ``<|repo_name|>``, ``<|file_sep|>``) found in a document become their added-token
  ids. This is HF's tokenizer called with ``split_special_tokens=True``
  (transformers; ``encode_special_tokens = True`` in ``tokenizers``), the only mode
  of the model's own tokenizer in which document text cannot produce control
  tokens, so the ids here are what that tokenizer gives the same text at eval,
  SFT or inference time. They are matched in the raw text (they are
  ``normalized: false``), longest first; NFC applies to the text between them.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import unicodedata
from functools import lru_cache
from pathlib import Path

import numpy as np

from jpqwen.errors import InputError

EOD_TOKEN = "<|endoftext|>"


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> printable char table used by byte-level BPE vocabularies."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs), strict=False))


def tokenizer_json(tokenizer_dir: str | Path) -> Path:
    path = Path(tokenizer_dir) / "tokenizer.json"
    if not path.is_file():
        raise InputError(
            f"no tokenizer.json in {tokenizer_dir}",
            hint="set data.tokenizer to a Hugging Face model dir such as a local copy of Qwen/Qwen2.5-0.5B",
        )
    return path


_SPECS: dict[bytes, dict] = {}
# tokenizer.json's normalizer when it is exactly NFC (Qwen2.5's); JSON escapes any quote inside a
# string, so this cannot match inside the vocabulary
_NFC_NORMALIZER = re.compile(rb'"normalizer"\s*:\s*\{\s*"type"\s*:\s*"NFC"\s*\}')


def _spec(path: Path) -> dict:
    """tokenizer.json parsed once per process and content (the tokenizer, tiktoken's table and the
    identity all read it; parsing takes ~0.15 s, hashing the bytes ~10 ms). Read-only."""
    data = path.read_bytes()
    key = hashlib.blake2b(data, digest_size=16).digest()
    if key not in _SPECS:
        if len(_SPECS) >= 4:
            _SPECS.clear()
        _SPECS[key] = json.loads(data)
    return _SPECS[key]


BACKENDS = ("fastokens", "tiktoken", "hf")
# the text -> ids semantics above; a change of them changes tokenizer_identity (and so re-runs `make data`)
IDENTITY_VERSION = "special-as-text,added-as-ids"
DEFAULT_BACKEND = "fastokens"


def fork_safe(backend: str) -> bool:
    """Whether a forked child may use a tokenizer of ``backend`` built before the fork: tiktoken and
    HF tokenizers (called one text at a time) keep no threads between calls; fastokens with one BPE
    thread (its setting here unless ``FASTOKENS_BPE_THREADS`` says otherwise) starts none."""
    return backend != "fastokens" or os.environ.get("FASTOKENS_BPE_THREADS", "1").strip() == "1"


class QwenTokenizer:
    """Encode text to Qwen2.5 ids and append ``<|endoftext|>`` (semantics: see the module docstring).

    ``fork_safe``: whether a forked child may use this object. fastokens is, with one BPE thread
    (``FASTOKENS_BPE_THREADS=1``, set here unless the environment says otherwise): it then starts
    no thread of its own, so the fork copies all of it. With more threads it runs a Rust thread
    pool, which a fork does not carry: ``jpqwen.data.writer.get_tokenizer`` then builds one per
    process.
    """

    def __init__(self, tokenizer_dir: str | Path, backend: str = DEFAULT_BACKEND, nfc_input: bool = False):
        """``nfc_input``: the caller hands over NFC text only (pass 1 normalizes every text first,
        NFC included). fastokens then runs without the tokenizer's own NFC normalizer, when that
        normalizer is exactly NFC: NFC leaves an NFC text as it is, so the ids are the same (tested
        against HF on every document of the test corpora), for ~16 % less tokenizing time
        (bench/results/data.md). ``skips_nfc`` says whether it did. The other backends ignore it."""
        self.dir = Path(tokenizer_dir)
        self.backend = backend
        self.skips_nfc = False
        self.pid = os.getpid()  # the process that built it (see get_tokenizer)
        path = tokenizer_json(self.dir)
        missing = InputError(f"{self.dir}/tokenizer.json has no {EOD_TOKEN} token; is this a Qwen2.5 tokenizer?")
        if backend == "fastokens":  # reads tokenizer.json itself: no Python parse of it (~0.15 s) here
            # one Rust thread per process: the pipeline's parallelism is its worker processes
            os.environ.setdefault("FASTOKENS_BPE_THREADS", "1")
            self.fork_safe = fork_safe(backend)
            from fastokens import Tokenizer as FastTokenizer

            if nfc_input:
                # tokenizer.json with its NFC normalizer taken out; any other normalizer stays (file as is)
                stripped, found = _NFC_NORMALIZER.subn(b'"normalizer": null', path.read_bytes())
                self.skips_nfc = found == 1
            if self.skips_nfc:
                self._ft = FastTokenizer.from_json_str(stripped.decode("utf-8"))
            else:
                self._ft = FastTokenizer.from_file(str(path))
            added = {t["content"]: t["id"] for t in self._ft.added_tokens()}
            if EOD_TOKEN not in added:
                raise missing
            self.eod_id = added[EOD_TOKEN]
            self.vocab_size = self._ft.vocab_size
            return
        self.fork_safe = fork_safe(backend)
        spec = _spec(path)
        added = {t["content"]: t["id"] for t in spec.get("added_tokens", [])}
        if EOD_TOKEN not in added:
            raise missing
        self.eod_id = added[EOD_TOKEN]
        self.vocab_size = len(spec["model"]["vocab"]) + len(added)
        if backend == "tiktoken":
            self._enc = _tiktoken_encoding(str(path))
            self._added, self._added_ids = _non_special_added(spec, str(path))
        elif backend == "hf":
            from tokenizers import Tokenizer

            self._hf = Tokenizer.from_file(str(path))
            self._hf.encode_special_tokens = True  # = transformers' split_special_tokens=True
        else:
            raise InputError(f"unknown tokenizer backend {backend!r}; one of {', '.join(BACKENDS)}")

    def encode(self, text: str) -> list[int]:
        """Ids of ``text`` without the end-of-document token."""
        if self.backend == "fastokens":
            return self._ft.encode(text, add_special_tokens=False, split_special_tokens=True).ids
        if self.backend == "tiktoken":
            pieces = self._tiktoken_pieces(text)
            return (pieces[0] if len(pieces) == 1 else np.concatenate(pieces)).tolist()
        return self._hf.encode(text, add_special_tokens=False).ids

    def encode_document(self, text: str) -> list[int]:
        ids = self.encode(text)
        ids.append(self.eod_id)
        return ids

    def encode_document_array(self, text: str) -> np.ndarray:
        """``encode_document`` as an int32 array (what the Megatron writer stores), without the
        Python list where the backend can fill a buffer. Same ids (tested)."""
        if self.backend == "fastokens":
            flat, _ = self._ft.encode_batch_flat([text], add_special_tokens=False, split_special_tokens=True)
            return _with_eod(np.frombuffer(flat, dtype=np.uint32), self.eod_id)
        if self.backend == "tiktoken":
            pieces = self._tiktoken_pieces(text)
            return _with_eod(pieces[0] if len(pieces) == 1 else np.concatenate(pieces), self.eod_id)
        return np.asarray(self.encode_document(text), dtype=np.int32)

    def encode_documents(self, texts: list[str]) -> list[np.ndarray]:
        """``encode_document_array`` of each text. fastokens encodes them in one call (~20 %
        less CPU than one call per text); a failure anywhere raises (the caller retries one by one)."""
        flat, lengths = self.encode_documents_flat(texts)
        ends = np.cumsum(lengths)
        return [flat[e - n : e] for e, n in zip(ends.tolist(), lengths.tolist(), strict=True)]

    def encode_documents_flat(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """The ``encode_document_array`` of every text back to back in one int32 array, and each
        one's length (its EOD included): what a Megatron part stores, without one array per text."""
        if self.backend != "fastokens":
            docs = [self.encode_document_array(t) for t in texts]
            lengths = np.fromiter((d.size for d in docs), dtype=np.int64, count=len(docs))
            return (np.concatenate(docs) if docs else np.zeros(0, dtype=np.int32)), lengths
        flat, offsets = self._ft.encode_batch_flat(texts, add_special_tokens=False, split_special_tokens=True)
        ids = np.frombuffer(flat, dtype=np.uint32)
        off = np.frombuffer(offsets, dtype=np.uint64).astype(np.int64)
        # every document followed by its EOD, in one copy (ids < 2**31: the same bits as int32)
        out = np.insert(ids, off[1:], np.uint32(self.eod_id)).view(np.int32)
        return out, np.diff(off) + 1

    def _tiktoken_pieces(self, text: str) -> list[np.ndarray]:
        """uint32 ids of ``text`` as pieces: the text between non-special added tokens (NFC, then
        tiktoken's ordinary encoding: no special token allowed) and those tokens' ids."""
        if self._added is None or self._added.search(text) is None:
            return [self._ordinary(text)]
        pieces = []
        pos = 0
        for m in self._added.finditer(text):
            if m.start() > pos:
                pieces.append(self._ordinary(text[pos : m.start()]))
            pieces.append(np.array([self._added_ids[m.group()]], dtype=np.uint32))
            pos = m.end()
        if pos < len(text):
            pieces.append(self._ordinary(text[pos:]))
        return pieces

    def _ordinary(self, text: str) -> np.ndarray:
        if not unicodedata.is_normalized("NFC", text):
            text = unicodedata.normalize("NFC", text)
        return self._enc.encode_to_numpy(text, allowed_special=set(), disallowed_special=())


def _with_eod(ids: np.ndarray, eod_id: int) -> np.ndarray:
    out = np.empty(ids.size + 1, dtype=np.int32)
    out[:-1] = ids
    out[-1] = eod_id
    return out


def _non_special_added(spec: dict, path: str) -> tuple[re.Pattern | None, dict[str, int]]:
    """The added tokens HF matches in text under split_special_tokens (special: false), as one
    regex (longest first = HF's leftmost-longest match), and their ids."""
    tokens = [t for t in spec.get("added_tokens", []) if not t.get("special")]
    for t in tokens:
        if t.get("normalized") or t.get("lstrip") or t.get("rstrip") or t.get("single_word"):
            raise InputError(
                f"{path}: added token {t['content']!r} has normalized/lstrip/rstrip/single_word set; "
                "the tiktoken backend only matches plain added tokens (use tokenizer_backend: fastokens or hf)"
            )
    if not tokens:
        return None, {}
    ids = {t["content"]: t["id"] for t in tokens}
    pattern = "|".join(re.escape(s) for s in sorted(ids, key=len, reverse=True))
    return re.compile(pattern), ids


@lru_cache(maxsize=4)
def _tiktoken_encoding(path: str):
    import tiktoken

    spec = _spec(Path(path))
    model = spec["model"]
    if model.get("type") != "BPE" or not model.get("vocab"):
        raise InputError(f"{path}: not a byte-level BPE tokenizer (model.type={model.get('type')!r})")
    pattern = _split_regex(spec, path)
    # token string -> its bytes: map each printable stand-in char back to its byte (via latin-1)
    to_bytes = str.maketrans({c: chr(b) for b, c in _bytes_to_unicode().items()})
    ranks = {token.translate(to_bytes).encode("latin-1"): rank for token, rank in model["vocab"].items()}
    specials = {t["content"]: t["id"] for t in spec.get("added_tokens", [])}
    return tiktoken.Encoding(
        name=f"qwen-bpe-{Path(path).parent.name}", pat_str=pattern, mergeable_ranks=ranks, special_tokens=specials
    )


def _split_regex(spec: dict, path: str) -> str:
    pre = spec.get("pre_tokenizer") or {}
    steps = pre.get("pretokenizers", [pre])
    for step in steps:
        if step.get("type") == "Split" and "Regex" in step.get("pattern", {}):
            return step["pattern"]["Regex"]
    raise InputError(
        f"{path}: no Split pre-tokenizer regex; the tiktoken fast path needs one (use tokenizer_backend: hf)"
    )


def tokenizer_identity(tokenizer_dir: str | Path) -> str:
    """sha256 of what decides the ids (vocab, merges, split regex, normalizer, EOD id).

    Part of the outputs' fingerprint. It ignores the rest of tokenizer.json, so
    the test tokenizer and Qwen/Qwen2.5-0.5B's give the same identity when their
    vocabularies agree, and tokenized data is reused between them.
    """
    spec = _spec(tokenizer_json(tokenizer_dir))
    model = spec["model"]
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]
    eod = {t["content"]: t["id"] for t in spec.get("added_tokens", [])}.get(EOD_TOKEN)
    # added tokens: special ones are text, the others keep their ids (module docstring)
    added = sorted((t["content"], t["id"], bool(t.get("special"))) for t in spec.get("added_tokens", []))
    blob = json.dumps(
        [
            IDENTITY_VERSION,
            sorted(model["vocab"].items()),
            merges,
            spec.get("pre_tokenizer"),
            spec.get("normalizer"),
            eod,
            added,
        ],
        ensure_ascii=False,
    )
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()
