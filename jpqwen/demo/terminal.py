"""Terminal mode: fixed prompts through every stage, a table of timings, then the answers."""

from __future__ import annotations

import unicodedata
from typing import Any


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _pad(text: str, width: int) -> str:
    return text + " " * max(0, width - _width(text))


def _wrap(text: str, columns: int) -> list[str]:
    """Lines of at most ``columns`` display columns (CJK characters take two)."""
    lines, cur, width = [], "", 0
    for ch in text:
        w = _width(ch)
        if width + w > columns:
            lines.append(cur)
            cur, width = "", 0
        cur += ch
        width += w
    return [*lines, cur] if cur else lines


def render(prompt: str, answers: list[dict[str, Any]], wrap: int = 100) -> str:
    label_w = max(_width(a["label"]) for a in answers) + 2
    head = f"{_pad('stage', label_w)}{'load s':>8}{'1st token':>12}{'tokens/s':>10}{'weights':>10}{'memory':>20}"
    lines = [f"▶ {prompt}", head, "-" * _width(head)]
    for a in answers:
        mem = f"{a['memory_mb']:,.0f} MiB {a['memory_kind']}"
        lines.append(
            f"{_pad(a['label'], label_w)}{a['load_s']:>8.2f}{a['ttft_ms']:>9.0f} ms{a['tokens_per_s']:>10.1f}"
            f"{a['weights_mb']:>6.0f} MiB{mem:>20}"
        )
    lines.append("")
    for a in answers:
        body = a["text"].strip().replace("\n", " ") or "(no output)"
        lines.append(f"[{a['label']}]")
        lines += ["  " + line for line in _wrap(body, wrap - 2)]
    return "\n".join(lines) + "\n"


def run_terminal(models, prompts: list, template: str, out=None) -> list[dict[str, Any]]:
    """``prompts``: [jpqwen.hf.prompts.Prompt]; instruction prompts are wrapped in ``template``."""
    import sys

    out = out or sys.stdout
    results = []
    for prompt in prompts:
        answers = [models.answer(name, prompt.model_input(template)) for name in models.stages]
        results.append({"prompt": prompt.text, "category": prompt.category, "answers": answers})
        out.write(render(prompt.text, answers) + "\n")
        out.flush()
    return results
