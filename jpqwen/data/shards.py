"""Pass 1, one chunk at a time (in a worker): parse -> normalize -> filter -> hash -> tokenize.

Each chunk becomes a shard directory, written atomically (tmp dir + rename), so
an interrupted run resumes from the shards already finished::

    shards/000123/
      arrays.npz      per document: line, status, chars; per candidate: exact hash,
                      LSH band hashes, split, tokens (EOD included)
      tokens.bin/.idx the candidates (documents that passed the filters) tokenized, one
                      Megatron document each, in order (megatron-core's IndexedDatasetBuilder)
      heldout.jsonl   text + metadata of the candidates of the held-out split, one line each
      summary.json    counts, quarantined lines (file + line + reason), filter examples

``status``: 0 = candidate, k >= 1 = rejected by filter k-1, -1 = quarantined (a malformed line,
or a document the tokenizer failed on). Only candidates' hashes travel to the global dedup step:
16 bytes (exact) + 8 bytes per LSH band per document; the stage then copies the tokens of the
documents dedup keeps into the final datasets (``writer.merge_shards``).

Candidates are tokenized here, before the global dedup, rather than in a second pass over their
text after it: that pass cost more (writing, reading and decoding the text again, ~3 ms per MB)
than tokenizing the few documents dedup then drops (their share of the tokenizer's time).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from array import array
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from xxhash import xxh3_128_digest as _xxh3_128

from jpqwen.data.config import NearDedupConfig, NormalizeConfig
from jpqwen.data.filters import JapaneseRule, first_failures, stats_of
from jpqwen.data.normalize import normalize_text
from jpqwen.data.reader import Chunk
from jpqwen.data.tokenizer import QwenTokenizer
from jpqwen.data.writer import append_documents, encode_all, indexed_dataset

try:  # orjson parses ~3x faster; json is the fallback with the same results
    import orjson

    _loads = orjson.loads
    _JSONError: tuple[type[Exception], ...] = (orjson.JSONDecodeError, ValueError)
except ImportError:  # pragma: no cover
    _loads = json.loads
    _JSONError = (ValueError,)

STATUS_CANDIDATE = 0
STATUS_QUARANTINED = -1
_MUL = np.uint64(0x100000001B3)


@dataclass
class Profile:
    """How one corpus (Japanese or English) goes through pass 1."""

    name: str
    normalize: NormalizeConfig
    filters: list[JapaneseRule]  # (run as NeMo Curator DocumentFilters by the curator executor)
    near_dedup: NearDedupConfig
    validation_fraction: float
    examples_per_filter: int = 3
    reasons: list[str] = field(init=False)

    def __post_init__(self) -> None:
        self.reasons = [f.reason for f in self.filters]


EXACT_HASH = "xxh3-128"  # part of the data stage's identity (stage.py)


def exact_hash(text: str | bytes) -> bytes:
    """128-bit hash of the text's UTF-8 bytes (give the bytes when at hand: one encode less):
    XXH3-128, a fixed specification (the same bytes on every version and machine), ~20x blake2b."""
    data = text.encode("utf-8") if isinstance(text, str) else text
    return _xxh3_128(data)


class MinHasher:
    """MinHash of character n-grams (rensa, Rust), folded into one uint64 per LSH band.

    The n-grams are the filters' own rolling uint64 hashes (``TextStats.ngram_hashes``),
    handed to rensa as one flat buffer per chunk: no Python string per shingle.
    A MinHash is a function of the set of n-gram hashes, so it is deterministic.
    """

    def __init__(self, cfg: NearDedupConfig):
        from rensa import RMinHash

        self.cfg = cfg
        self._digest = RMinHash.digest_matrix_from_flat_token_hashes  # ~2x ..._from_token_hash_sets
        self.num_perm = cfg.bands * cfg.rows

    def token_hashes(self, text: str) -> np.ndarray:
        h = stats_of(text).ngram_hashes(self.cfg.ngram)
        if h.size == 0:  # shorter than one n-gram: the whole text is the only token
            h = np.frombuffer(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), dtype=np.uint64)
        return h

    def bands_many(self, texts: list[str], packed: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
        """LSH band hashes of ``texts``; ``packed``: their n-gram hashes if already at hand, as one
        buffer and ``len(texts) + 1`` offsets (filters.first_failures)."""
        b, r = self.cfg.bands, self.cfg.rows
        if not texts:
            return np.zeros((0, b), dtype=np.uint64)
        if packed is not None and np.all(np.diff(packed[1]) > 0):
            flat, offsets = packed[0], packed[1].astype(np.uint64)
        else:  # (a text shorter than one n-gram has its own token: token_hashes)
            hashes = [self.token_hashes(t) for t in texts]
            offsets = np.concatenate(([0], np.cumsum([h.size for h in hashes]))).astype(np.uint64)
            flat = np.concatenate(hashes)
        # R-MinHash values are 32-bit; array("I") takes the rows' ints ~20 % faster than numpy's
        # nested-list conversion (an int that did not fit would raise, not wrap)
        values = array("I")
        for row in self._digest(flat, offsets, self.num_perm, self.cfg.seed).to_rows():
            values.extend(row)
        sig = np.frombuffer(values, dtype=np.uint32).astype(np.uint64).reshape(len(texts), b, r)
        acc = np.zeros((len(texts), b), dtype=np.uint64)
        for j in range(r):  # polynomial hash of the r values of each band (mod 2**64)
            acc = acc * _MUL + sig[:, :, j]
        return acc

    def bands(self, text: str) -> np.ndarray:
        return self.bands_many([text])[0]


def shard_dir(root: Path, index: int) -> Path:
    return root / f"{index:06d}"


def is_done(root: Path, index: int) -> bool:
    return (shard_dir(root, index) / "summary.json").is_file()


def _validation_by_hash(h: bytes, fraction: float) -> bool:
    return int.from_bytes(h[:8], "little") % 1_000_000 < round(fraction * 1_000_000)


@dataclass
class ParsedLine:
    line: int  # 1-based line number in its file
    reason: str | None  # why it is quarantined, or None
    text: str  # the raw text ("" when quarantined)
    meta: dict  # the other fields of the JSON object
    excerpt: str = ""  # start of the raw line (quarantined lines only)


@dataclass(frozen=True)
class ChunkInfo:
    index: int
    file_index: int
    path: str
    validation: bool
    first_line: int
    nbytes: int

    @classmethod
    def of(cls, chunk: Chunk) -> ChunkInfo:
        return cls(chunk.index, chunk.file_index, chunk.path, chunk.validation, chunk.first_line, len(chunk.data))


_BLANK = frozenset(b" \t\r\x0b\x0c")  # what bytes.strip() removes, besides the line break itself


def parse_chunk(chunk: Chunk) -> tuple[list[ParsedLine], int]:
    """Parse every line; malformed ones get a quarantine reason. Returns (lines, blank line count).
    Lines are parsed from views of the chunk (orjson reads a memoryview): no copy per line."""
    out: list[ParsedLine] = []
    blank = 0
    data = chunk.data
    view = memoryview(data)
    start = 0
    line = chunk.first_line
    while (end := data.find(b"\n", start)) >= 0:
        raw = view[start:end] if _loads is not json.loads else data[start:end]
        if end == start or (data[start] in _BLANK and not data[start:end].strip()):
            blank += 1  # an empty line is not a document
            start, line = end + 1, line + 1
            continue
        reason = None
        doc = None
        try:
            doc = _loads(raw)
        except _JSONError as exc:
            try:
                bytes(raw).decode("utf-8")
                reason = f"malformed JSON: {exc}"
            except UnicodeDecodeError as uexc:
                reason = f"invalid UTF-8 at byte {uexc.start}"
        if reason is None:
            if not isinstance(doc, dict):
                reason = f"not a JSON object (got {type(doc).__name__})"
            elif "text" not in doc:
                reason = "no 'text' field"
            elif not isinstance(doc["text"], str):
                reason = f"'text' is {type(doc['text']).__name__}, not a string"
        if reason is not None:
            out.append(ParsedLine(line, reason, "", {}, bytes(raw[:120]).decode("utf-8", "replace")))
        else:
            assert isinstance(doc, dict)
            text = doc.pop("text")
            out.append(ParsedLine(line, None, text, doc))
        start, line = end + 1, line + 1
    return out, blank


def process_chunk(chunk: Chunk, profile: Profile, root: Path, hasher: MinHasher | None, tok: QwenTokenizer) -> dict:
    """Parse, normalize, filter, hash and tokenize one chunk; write its shard; return its summary."""
    parsed, blank = parse_chunk(chunk)
    texts: list[str] = []
    ok_texts: list[str] = []
    ok_codepoints: list[np.ndarray] = []
    for p in parsed:
        t = normalize_text(p.text, profile.normalize) if p.reason is None else ""
        texts.append(t)
        if p.reason is None:
            ok_texts.append(t)
            ok_codepoints.append(stats_of(t).codepoints)  # normalize's own when it changed nothing
    # every rule on every parsed text in one kernel call; the candidates' MinHash n-grams with them
    ngram = profile.near_dedup.ngram if hasher is not None else 0
    ok_failures, grams, gram_offsets = first_failures(ok_texts, ok_codepoints, profile.filters, ngram)
    del ok_codepoints
    it = iter(ok_failures)
    failures = [next(it) if p.reason is None else None for p in parsed]
    packed = None
    if grams is not None and gram_offsets is not None:
        cand = np.array([f is None for f in ok_failures], dtype=bool)
        packed = (grams, np.append(gram_offsets[:-1][cand], gram_offsets[-1]))
    return write_shard(ChunkInfo.of(chunk), parsed, texts, failures, blank, profile, root, hasher, tok, packed=packed)


def heldout_record(text: str, meta: dict) -> str:
    """One line of validation.jsonl: the text, then the other fields of its input line (keys sorted,
    nested ones too)."""
    return json.dumps({"text": text, **json.loads(json.dumps(meta, sort_keys=True))}, ensure_ascii=False)


def write_shard(
    chunk: ChunkInfo,
    parsed: list[ParsedLine],
    normalized: list[str],
    failures: list[tuple[int, float] | None],
    blank: int,
    profile: Profile,
    root: Path,
    hasher: MinHasher | None,
    tok: QwenTokenizer,
    packed: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict:
    """Hash and tokenize the candidates and write the shard of one chunk (shared by both executors).
    ``packed``: the MinHash tokens of the documents that passed the filters (MinHasher.bands_many),
    when the caller has them already. A document the tokenizer fails on is quarantined."""
    passed = [
        text
        for p, text, failed in zip(parsed, normalized, failures, strict=True)
        if p.reason is None and failed is None
    ]
    # tokenize first: fastokens keeps each text's UTF-8 in the str, so the encode below is a copy
    pieces, passed_lengths, errors = encode_all(tok, passed)
    encoded = iter(errors)
    lines_no: list[int] = []
    status: list[int] = []
    chars: list[int] = []
    cand_hash: list[bytes] = []
    cand_texts: list[str] = []
    cand_split: list[int] = []
    tokenizer_failed = False
    quarantine: list[dict] = []
    examples: dict[str, list[dict]] = {}
    heldout: list[str] = []
    k = profile.examples_per_filter

    for p, text, failed in zip(parsed, normalized, failures, strict=True):
        lines_no.append(p.line)
        if p.reason is not None:
            status.append(STATUS_QUARANTINED)
            chars.append(0)
            quarantine.append({"file": chunk.path, "line": p.line, "reason": p.reason, "excerpt": p.excerpt})
            continue
        chars.append(len(text))
        if failed is not None:
            fi, score = failed
            status.append(fi + 1)
            bucket = examples.setdefault(profile.reasons[fi], [])
            if len(bucket) < k:
                bucket.append(
                    {
                        "file": chunk.path,
                        "line": p.line,
                        "id": p.meta.get("id"),
                        "score": round(float(score), 4),
                        "excerpt": text[:160],
                    }
                )
            continue
        error = next(encoded)
        if error is not None:  # the tokenizer failed on it
            status.append(STATUS_QUARANTINED)
            quarantine.append({"file": chunk.path, "line": p.line, "reason": error, "excerpt": text[:80]})
            tokenizer_failed = True
            continue
        status.append(STATUS_CANDIDATE)
        h = exact_hash(text.encode("utf-8"))
        cand_hash.append(h)
        cand_texts.append(text)
        is_val = chunk.validation or _validation_by_hash(h, profile.validation_fraction)
        cand_split.append(1 if is_val else 0)
        if is_val:  # the held-out documents, as jsonl for the evaluation stage
            heldout.append(heldout_record(text, p.meta))
    if tokenizer_failed:
        packed = None  # (the packed n-grams include the documents quarantined since)

    n_bands = profile.near_dedup.bands if hasher is not None else 0
    summary = {
        "chunk": chunk.index,
        "file": chunk.path,
        "file_index": chunk.file_index,
        "first_line": chunk.first_line,
        "bytes": chunk.nbytes,
        "blank_lines": blank,
        "documents": len(status),
        "candidates": len(cand_hash),
        "quarantine": quarantine,
        "examples": examples,
    }
    final = shard_dir(root, chunk.index)
    tmp = final.with_name(final.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    hashes = np.frombuffer(b"".join(cand_hash), dtype=np.uint64).reshape(-1, 2)
    bands = hasher.bands_many(cand_texts, packed) if hasher is not None else np.zeros((0, n_bands), dtype=np.uint64)
    lengths = passed_lengths[passed_lengths > 0]  # the candidates' (the failed ones have none)
    builder = indexed_dataset().IndexedDatasetBuilder(str(tmp / "tokens.bin"), dtype=np.int32)
    append_documents(builder, pieces, lengths)
    builder.finalize(str(tmp / "tokens.idx"))
    np.savez(
        tmp / "arrays.npz",
        line=np.asarray(lines_no, dtype=np.int64),
        status=np.asarray(status, dtype=np.int16),
        chars=np.asarray(chars, dtype=np.int32),
        cand_hash=hashes,
        cand_bands=bands,
        cand_split=np.asarray(cand_split, dtype=np.uint8),
        cand_tokens=lengths,
    )
    (tmp / "heldout.jsonl").write_text("".join(line + "\n" for line in heldout), encoding="utf-8")
    (tmp / "summary.json").write_text(json.dumps(summary, ensure_ascii=False), encoding="utf-8")
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    return summary


def load_summary(root: Path, index: int) -> dict:
    return json.loads((shard_dir(root, index) / "summary.json").read_text(encoding="utf-8"))


def load_arrays(root: Path, index: int) -> dict[str, np.ndarray]:
    with np.load(shard_dir(root, index) / "arrays.npz") as z:
        return {key: z[key] for key in z.files}
