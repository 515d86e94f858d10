"""Text normalization: Unicode NFC, control characters, whitespace.

Runs before the filters and the exact-duplicate hash, so two copies of an
article that differ only in Unicode composition, a stray control character or
spacing count as the same document. Full-width spaces (U+3000) are kept: they
are meaningful in Japanese typesetting.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

from jpqwen.data.config import NormalizeConfig
from jpqwen.data.filters import needs_normalizing
from jpqwen.data.imports import import_module

# == nemo_curator.modifiers.DocumentModifier, without importing all of NeMo Curator (see imports.py)
DocumentModifier = import_module("nemo_curator.modifiers.doc_modifier").DocumentModifier

# C0/C1 controls except \t and \n, plus zero-width chars and the BOM.
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b-\u200d\u2060\ufeff]")
_SPACES = re.compile("[ \t\u00a0]+")
_LINE_EDGES = re.compile(" *\n *")


# part of the data stage's identity: texts normalized before NFC went last differ in rare cases
NORMALIZE_VERSION = "nfc-last"


@lru_cache(maxsize=8)
def _blank_run(limit: int) -> re.Pattern:
    return re.compile(f"\n{{{limit + 1},}}")


def normalize_text(text: str, cfg: NormalizeConfig) -> str:
    # Most texts need no change: one numba scan of the code points finds that (no character that NFC
    # could change or compose, nothing the other steps touch), the text comes back as the same
    # object, and the filters reuse those code points (filters.stats_of).
    if not isinstance(text, str):
        raise TypeError(f"normalize_text takes a str, not {type(text).__name__}")
    blank_run = cfg.max_blank_lines + 2 if cfg.max_blank_lines >= 0 else 0
    if not needs_normalizing(text, cfg.nfc, cfg.strip_control, cfg.collapse_spaces, blank_run):
        return text
    return _normalize_slow(text, cfg)


def _normalize_slow(text: str, cfg: NormalizeConfig) -> str:
    """Every step in turn (the definition; a test checks the fast path above against it). Each
    substitution runs only when a plain substring test says it can change something."""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if cfg.strip_control:
        text = _CONTROL.sub("", text)
    if cfg.collapse_spaces:
        if "\t" in text or "\u00a0" in text or "  " in text:  # else every run is one " " already
            text = _SPACES.sub(" ", text)
        if " \n" in text or "\n " in text:  # else no space touches a line break
            text = _LINE_EDGES.sub("\n", text)
        text = text.strip()
    if cfg.max_blank_lines >= 0:
        limit = cfg.max_blank_lines + 1
        if "\n" * (limit + 1) in text:
            text = _blank_run(limit).sub("\n" * limit, text)
    # NFC last: removing a character can leave a letter next to a combining mark that composes with
    # it ("e", U+200B, U+0301 -> "e", U+0301), so only NFC applied last makes every result NFC
    # (which the tokenizer relies on: QwenTokenizer's nfc_input)
    if cfg.nfc and not unicodedata.is_normalized("NFC", text):
        text = unicodedata.normalize("NFC", text)
    return text


class JapaneseNormalizer(DocumentModifier):
    """:func:`normalize_text` as a NeMo Curator ``DocumentModifier`` (for ``Modify``)."""

    def __init__(self, cfg: NormalizeConfig | None = None):
        super().__init__()
        self.cfg = cfg or NormalizeConfig()

    def modify_document(self, text: str) -> str:
        return normalize_text(text, self.cfg)
