"""Fixed prompts for eval generations and the demo.

A prompts file is JSON: a list of strings, a list of objects with a
``prompt`` (or ``text``) field, or an object ``{"prompts": [...]}`` of either.
Relative paths are resolved against the repository root.
"""

from __future__ import annotations

import json
from pathlib import Path

from jpqwen.config import REPO_ROOT
from jpqwen.errors import InputError


def resolve(path: str | Path) -> Path:
    p = Path(path).expanduser()
    return p if p.is_absolute() else REPO_ROOT / p


def load_prompts(path: str | Path) -> list[str]:
    p = resolve(path)
    if not p.is_file():
        raise InputError(f"prompts file not found: {p}", hint="set eval.prompts_ja / demo.prompts to a JSON file")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"{p}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    if isinstance(data, dict):
        data = data.get("prompts")
    if not isinstance(data, list) or not data:
        raise InputError(f"{p}: expected a non-empty list of prompts (or {{'prompts': [...]}})")
    prompts = []
    for i, item in enumerate(data):
        text = item.get("prompt", item.get("text")) if isinstance(item, dict) else item
        if not isinstance(text, str) or not text.strip():
            raise InputError(f"{p}: prompt #{i} must be a non-empty string (or an object with a 'prompt' field)")
        prompts.append(text)
    return prompts
