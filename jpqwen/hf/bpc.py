"""Bits per character: a tokenizer-independent language-modelling score.

    bpc = sum over documents of NLL (nats) / (ln 2 * characters)

- Each document is scored as the model saw documents in pretraining: preceded
  by ``<|endoftext|>`` (Megatron's end-of-document token), so its first token
  is predicted too. Every token of the document is predicted exactly once.
- Characters are Unicode code points of the text as stored (``len(text)``).
- Long documents: sliding windows of ``window`` tokens starting every
  ``stride`` tokens. A token is predicted in the first window that contains
  it, so it always has at least ``window - stride`` tokens of context (all of
  them in the first window). With ``stride = window - 1`` the windows are
  chunks that overlap by one token (fastest, least context);
  ``stride = window / 2`` is the default, as in the Hugging Face perplexity
  guide.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from jpqwen.errors import InputError


@dataclass
class BpcResult:
    documents: int
    skipped_empty: int  # documents whose text is empty (counted, not scored)
    characters: int
    tokens: int  # predicted tokens (document tokens; the leading <|endoftext|> is context only)
    nll_nats: float
    bits_per_char: float
    bits_per_token: float
    chars_per_token: float
    window: int
    stride: int
    seconds: float

    def to_dict(self) -> dict:
        return asdict(self)


def read_jsonl_texts(path: str | Path, field: str = "text", max_docs: int | None = None) -> list[str]:
    """Texts from a JSONL file; a malformed line is an error naming file and line."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: file not found")
    texts = []
    with p.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{p}:{lineno}: not valid JSON ({exc.msg})") from None
            if not isinstance(rec, dict) or not isinstance(rec.get(field), str):
                raise InputError(f"{p}:{lineno}: expected an object with a string field {field!r}")
            texts.append(rec[field])
            if max_docs and len(texts) >= max_docs:
                break
    return texts


def window_plan(n_ids: int, window: int, stride: int) -> list[tuple[int, int, int]]:
    """Windows ``(begin, end, first_scored)`` over ``n_ids`` ids (position 0 is context only).

    Window k holds ids[begin:end] and predicts positions first_scored..end-1.
    """
    if window < 2 or not 0 < stride < window:
        # stride < window: the first id a window predicts needs at least one id of context inside it
        raise InputError(f"bpc window must be >= 2 and 0 < stride < window (got window={window}, stride={stride})")
    plan: list[tuple[int, int, int]] = []
    scored_until = 1  # positions < scored_until are done (position 0 has nothing to predict it)
    begin = 0
    while scored_until < n_ids:
        end = min(begin + window, n_ids)
        plan.append((begin, end, scored_until))
        scored_until = end
        begin += stride
    return plan


def document_nll(model, ids: list[int], window: int, stride: int) -> float:
    """Sum of -log p(id_t | context) in nats over positions 1..len(ids)-1."""
    import torch
    import torch.nn.functional as F

    device = next(model.parameters()).device
    all_ids = torch.tensor(ids, device=device)
    total = 0.0
    for begin, end, first in window_plan(len(ids), window, stride):
        chunk = all_ids[begin:end][None]
        n_scored = end - first
        with torch.inference_mode():
            # only the last n_scored + 1 positions' logits are needed (the LM head over a 152k vocabulary
            # dominates the cost); the logits at position p predict the id at p + 1, the last one is unused
            logits = model(input_ids=chunk, logits_to_keep=n_scored + 1).logits[0].float()
        pred = logits[:-1]
        target = all_ids[first:end]
        total += float(F.cross_entropy(pred, target, reduction="sum"))
    return total


def bits_per_char(
    loaded, texts: list[str], window: int = 1024, stride: int = 512, progress: str | None = None
) -> BpcResult:
    """Score ``texts`` with a :class:`jpqwen.hf.models.LoadedModel`."""
    from tqdm import tqdm

    tok = loaded.tokenizer
    bos = tok.convert_tokens_to_ids(tok.eos_token)  # <|endoftext|>: the end-of-document token in pretraining
    t0 = time.perf_counter()
    nll = 0.0
    chars = tokens = skipped = 0
    for text in tqdm(texts, desc=progress or "bpc", unit="doc", disable=bool(os.environ.get("CI")) or progress is None):
        ids = tok(text, add_special_tokens=False)["input_ids"]
        if not text or not ids:
            skipped += 1
            continue
        nll += document_nll(loaded.model, [bos, *ids], window, stride)
        chars += len(text)
        tokens += len(ids)
    if chars == 0:
        raise InputError("bits per character: no non-empty documents to score")
    return BpcResult(
        documents=len(texts) - skipped,
        skipped_empty=skipped,
        characters=chars,
        tokens=tokens,
        nll_nats=nll,
        bits_per_char=nll / (math.log(2) * chars),
        bits_per_token=nll / (math.log(2) * tokens),
        chars_per_token=chars / tokens,
        window=window,
        stride=stride,
        seconds=time.perf_counter() - t0,
    )
