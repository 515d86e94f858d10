"""Fixed prompts for eval generations and the demo.

A prompts file is JSON in one of these shapes (relative paths are resolved
against the repository root)::

    ["日本の首都は", ...]                                  # all "completion"
    {"prompts": ["...", {"prompt": "...", "category": "instruction"}]}
    {"completion": ["日本の首都は", ...], "instruction": ["...してください。", ...]}

``completion`` prompts are continued as they are. ``instruction`` prompts are
wrapped in the LoRA stage's prompt template (``lora.prompt_template`` from its
stage record, default ``"{input}\\n{output}"``) up to ``{output}``, the way the
LoRA model saw instructions in training. Every stage gets the same input, so
the side-by-side comparison stays fair.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from jpqwen.config import REPO_ROOT
from jpqwen.errors import InputError

DEFAULT_TEMPLATE = "{input}\n{output}"
CATEGORIES = ("completion", "instruction")


@dataclass(frozen=True)
class Prompt:
    text: str
    category: str = "completion"

    def model_input(self, template: str = DEFAULT_TEMPLATE) -> str:
        if self.category != "instruction":
            return self.text
        return instruction_prefix(template).replace("{input}", self.text)


def instruction_prefix(template: str) -> str:
    """The template up to ``{output}``: what precedes the answer."""
    if "{input}" not in template or "{output}" not in template:
        raise InputError(f"prompt template {template!r} must contain {{input}} and {{output}}")
    return template[: template.rindex("{output}")]


def resolve(path: str | Path) -> Path:
    p = Path(path).expanduser()
    return p if p.is_absolute() else REPO_ROOT / p


def _one(p: Path, item, where: str, category: str) -> Prompt:
    if isinstance(item, dict):
        text, category = item.get("prompt", item.get("text")), item.get("category", category)
    else:
        text = item
    if not isinstance(text, str) or not text.strip():
        raise InputError(f"{p}: {where} must be a non-empty string (or an object with a 'prompt' field)")
    if category not in CATEGORIES:
        raise InputError(f"{p}: {where}: category {category!r} is not one of {', '.join(CATEGORIES)}")
    return Prompt(text, category)


def load_prompts(path: str | Path) -> list[Prompt]:
    p = resolve(path)
    if not p.is_file():
        raise InputError(f"prompts file not found: {p}", hint="set eval.prompts_ja / demo.prompts to a JSON file")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"{p}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    prompts: list[Prompt] = []
    if isinstance(data, dict) and "prompts" not in data:
        for category, items in data.items():
            if category not in CATEGORIES or not isinstance(items, list):
                raise InputError(f"{p}: key {category!r} must be one of {', '.join(CATEGORIES)} with a list of prompts")
            prompts += [_one(p, it, f"{category}[{i}]", category) for i, it in enumerate(items)]
    else:
        items = data.get("prompts") if isinstance(data, dict) else data
        if not isinstance(items, list):
            raise InputError(f"{p}: expected a list of prompts, {{'prompts': [...]}} or {{category: [...]}}")
        prompts = [_one(p, it, f"prompt #{i}", "completion") for i, it in enumerate(items)]
    if not prompts:
        raise InputError(f"{p}: no prompts")
    return prompts


def interleave(prompts: list[Prompt], n: int) -> list[Prompt]:
    """Up to ``n`` prompts taking categories in turn (so a short demo shows every kind)."""
    by_cat = {c: [p for p in prompts if p.category == c] for c in CATEGORIES}
    out: list[Prompt] = []
    while len(out) < min(n, len(prompts)):
        for c in CATEGORIES:
            if by_cat[c] and len(out) < n:
                out.append(by_cat[c].pop(0))
    return out


def lora_template(work) -> str:
    """``lora.prompt_template`` from the LoRA stage record (the default when there is none)."""
    from jpqwen.io import read_json

    path = work.stamps / "lora.json"
    if not path.is_file():
        return DEFAULT_TEMPLATE
    rec = read_json(path)

    def find(tree):
        if isinstance(tree, dict):
            if isinstance(tree.get("prompt_template"), str):
                return tree["prompt_template"]
            for v in tree.values():
                if (found := find(v)) is not None:
                    return found
        return None

    return find(rec.get("config")) or DEFAULT_TEMPLATE
