"""The data card: what went in, what came out, and why each document left.

``data_card.json`` (machine-readable), ``data_card.md`` (with examples of what
each filter removed) and ``data_card.png`` (document lengths before/after).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from jpqwen.data.corpus import CorpusResult
from jpqwen.io import write_json_atomic, write_text_atomic

log = logging.getLogger("jpqwen.data")


def corpus_card(r: CorpusResult) -> dict[str, Any]:
    tokens = {name: st["tokens"] for name, st in r.splits.items()}
    chars = sum(st["chars"] for st in r.splits.values())
    n_tokens = sum(tokens.values())
    # EOD tokens are not text: chars/token is over the text tokens only
    text_tokens = n_tokens - sum(st["documents"] for st in r.splits.values())
    return {
        "documents_in": r.documents_in,
        "documents_kept": r.kept,
        "rejected_by_filter": r.rejected_by_filter,
        "duplicates_exact": r.duplicates_exact,
        "duplicates_near": r.duplicates_near,
        "quarantined": r.quarantined,
        "blank_lines_skipped": r.blank_lines,
        "documents": {name: st["documents"] for name, st in r.splits.items()},
        "tokens": tokens,
        "chars": {name: st["chars"] for name, st in r.splits.items()},
        "bytes_in": r.bytes_in,
        "chars_per_token": round(chars / text_tokens, 4) if text_tokens else None,
        "seconds": r.seconds,
        "chunks": len(r.chunks),
    }


def write_card(
    out_dir: Path,
    card: dict[str, Any],
    ja: CorpusResult,
    en: CorpusResult | None,
    filters: list[dict[str, Any]],
) -> dict[str, Path]:
    json_path = write_json_atomic(out_dir / "data_card.json", card)
    png_path = out_dir / "data_card.png"
    _histogram(ja, png_path)
    md_path = write_text_atomic(out_dir / "data_card.md", _markdown(card, ja, en, filters))
    return {"json": json_path, "md": md_path, "png": png_path}


def _histogram(r: CorpusResult, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    before = r.chars_before if r.chars_before is not None else np.zeros(0)
    after = r.chars_after if r.chars_after is not None else np.zeros(0)
    hi = max(int(before.max()) if before.size else 10, 10)
    bins = np.logspace(0, np.log10(hi + 1), 40)
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    ax.hist(np.maximum(before, 1), bins=bins, alpha=0.5, label=f"parsed ({before.size:,} docs)")
    ax.hist(np.maximum(after, 1), bins=bins, alpha=0.7, label=f"kept ({after.size:,} docs)")
    ax.set_xscale("log")
    ax.set_xlabel("document length (characters, after normalization)")
    ax.set_ylabel("documents")
    ax.set_title("Japanese documents before and after filtering + dedup")
    ax.legend()
    # fixed margins: tight_layout measures every log-axis tick label (~0.3 CPU-s) for the same result
    fig.subplots_adjust(left=0.11, right=0.97, bottom=0.13, top=0.92)
    tmp = path.with_name(path.name + ".tmp.png")
    fig.savefig(tmp, metadata={"Software": None})  # no timestamp/version: stable bytes
    plt.close(fig)
    tmp.replace(path)


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ⏎ ")


def _markdown(card: dict, ja: CorpusResult, en: CorpusResult | None, filters: list[dict]) -> str:
    c = card["japanese"]
    lines = [
        "# Data card",
        "",
        f"Source: `{card['source']}` ({len(card['input_files'])} files, {c['bytes_in'] / 1e6:.2f} MB). "
        f"Tokenizer: `{card['tokenizer']['dir']}` ({card['tokenizer']['backend']}). "
        f"Made in {card['seconds']:.1f} s with {card['workers']} worker(s), executor `{card['executor']}`.",
        "",
        "## Every document, counted once",
        "",
        "| | documents |",
        "|---|---:|",
        f"| read | {c['documents_in']:,} |",
        f"| kept | {c['documents_kept']:,} |",
    ]
    for reason, n in c["rejected_by_filter"].items():
        lines.append(f"| rejected: {reason} | {n:,} |")
    lines += [
        f"| duplicate (exact) | {c['duplicates_exact']:,} |",
        f"| duplicate (near) | {c['duplicates_near']:,} |",
        f"| quarantined (malformed line, tokenizer failure) | {c['quarantined']:,} |",
        "",
        "| split | documents | tokens (incl. EOD) | characters |",
        "|---|---:|---:|---:|",
    ]
    for name in c["tokens"]:
        lines.append(f"| {name} | {c['documents'][name]:,} | {c['tokens'][name]:,} | {c['chars'][name]:,} |")
    lines += ["", f"Characters per token (text only): {c['chars_per_token']}.", "", "![lengths](data_card.png)", ""]
    lines += ["## Filters (in order; the first one a document fails is its reason)", ""]
    lines += ["| reason | rule | from | removed |", "|---|---|---|---:|"]
    for f in filters:
        lines.append(
            f"| {f['reason']} | {f['rule']} | {f['source']} | {c['rejected_by_filter'].get(f['reason'], 0):,} |"
        )
    lines += ["", "## Examples of what was removed", ""]
    for reason, exs in ja.examples.items():
        lines.append(f"### {reason}")
        lines.append("")
        for e in exs:
            lines.append(f"- `{Path(e['file']).name}:{e['line']}` score {e['score']}: {_md_escape(e['excerpt'])}")
        lines.append("")
    for kind, exs in ja.duplicate_examples.items():
        lines.append(f"### {kind}")
        lines.append("")
        for e in exs:
            d = e["duplicate_of"]
            lines.append(f"- `{Path(e['file']).name}:{e['line']}` duplicates `{Path(d['file']).name}:{d['line']}`")
        lines.append("")
    if ja.quarantine:
        lines += ["### quarantined", ""]
        for q in ja.quarantine[:10]:
            lines.append(f"- `{Path(q['file']).name}:{q['line']}`: {_md_escape(q['reason'])}")
        lines.append("")
    if en is not None and "english" in card:
        e = card["english"]
        lines += [
            "## English (replay + forgetting eval)",
            "",
            f"{e['documents_in']} read, {e['documents_kept']} kept "
            f"({e['documents']['train']} replay, {e['tokens']['train']:,} tokens; "
            f"{e['documents']['validation']} held out in en_validation.jsonl), "
            f"rejected {e['rejected_by_filter']}, duplicates {e['duplicates_exact']} exact + "
            f"{e['duplicates_near']} near, quarantined {e['quarantined']}.",
            "",
        ]
    return "\n".join(lines)
