"""Where the documents come from: ``sample``, ``llm-jp-v3-ja-wiki``, or a path/glob.

``DATA_SOURCE`` (env) or ``data.source`` picks one:

- ``sample`` (default): the corpus shipped in ``jpqwen/resources/sample/ja_wiki``
  (clean articles written for this project + planted defects, see DEFECTS.md).
- ``llm-jp-v3-ja-wiki``: LLM-jp Corpus v3 ``ja/ja_wiki`` (validation_0 + train_0..13,
  ~1.26M docs), downloaded resumably into ``DATA_DIR`` (env; default ./data/raw).
  Files already there are used as-is, so an offline machine works from copies.
- anything else: a file, a directory (its *.jsonl and *.jsonl.gz) or a glob.

Files whose name matches ``data.validation_files`` (default ``validation*``) form
the validation split and are read first, so a document in both keeps its
validation copy and the train copy is dropped as a duplicate.
"""

from __future__ import annotations

import fnmatch
import glob
import os
import re
from dataclasses import dataclass
from pathlib import Path

from jpqwen.config import REPO_ROOT
from jpqwen.data.download import RemoteFile, download
from jpqwen.errors import InputError

SAMPLE_JA = REPO_ROOT / "jpqwen" / "resources" / "sample" / "ja_wiki"
SAMPLE_EN = REPO_ROOT / "jpqwen" / "resources" / "sample" / "en"
LLMJP_NAME = "llm-jp-v3-ja-wiki"
LLMJP_BASE = "https://gitlab.llm-jp.nii.ac.jp/datasets/llm-jp-corpus-v3/-/raw/main/ja/ja_wiki"
LLMJP_FILES = ["validation_0.jsonl.gz"] + [f"train_{i}.jsonl.gz" for i in range(14)]
# Sizes/sha256 from the Git LFS pointers, where recorded. None = not checked here
# (the size still is, against Content-Length, and gzip integrity when read).
# A file <DATA_DIR>/llm-jp-corpus-v3/ja/ja_wiki/SHA256SUMS ("<sha256>  <name>") adds checks.
LLMJP_KNOWN: dict[str, tuple[int | None, str | None]] = {}


@dataclass(frozen=True)
class InputFile:
    path: Path
    validation: bool  # True: every document of this file goes to the validation split

    def stat_key(self) -> list:
        st = self.path.stat()
        return [str(self.path), st.st_size, st.st_mtime_ns]


def natural_key(path: Path) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.name)] + [str(path)]


def data_dir(download_dir: str | None = None) -> Path:
    raw = download_dir or os.environ.get("DATA_DIR") or (REPO_ROOT / "data" / "raw")
    return Path(raw).expanduser().resolve()


def expand(source: str | Path) -> list[Path]:
    """A file, a directory or a glob -> sorted .jsonl / .jsonl.gz files."""
    text = os.path.expanduser(str(source))
    p = Path(text)
    if p.is_dir():
        found = [q for q in p.iterdir() if q.name.endswith((".jsonl", ".jsonl.gz"))]
    elif p.is_file():
        found = [p]
    else:
        found = [Path(q) for q in glob.glob(text, recursive=True) if Path(q).is_file()]
    found = [q.resolve() for q in found if not q.name.startswith(".")]
    return sorted(set(found), key=natural_key)


def resolve_source(source: str, validation_pattern: str, download_dir: str | None = None) -> list[InputFile]:
    if source == "sample":
        paths = expand(SAMPLE_JA / "*.jsonl")
    elif source == LLMJP_NAME:
        paths = fetch_llmjp(download_dir)
    else:
        paths = expand(source)
    if not paths:
        raise InputError(
            f"DATA_SOURCE={source!r} matches no .jsonl or .jsonl.gz file",
            hint=f"use 'sample', '{LLMJP_NAME}', a directory, a file or a glob such as 'data/raw/ja/*.jsonl.gz'",
        )
    files = [InputFile(p, fnmatch.fnmatch(p.name, validation_pattern)) for p in paths]
    return [f for f in files if f.validation] + [f for f in files if not f.validation]


def english_files(source: str) -> list[InputFile]:
    paths = expand(SAMPLE_EN / "*.jsonl") if source == "sample" else expand(source)
    if not paths:
        raise InputError(f"data.english.source={source!r} matches no .jsonl or .jsonl.gz file")
    return [InputFile(p, False) for p in paths]


def llmjp_remotes(sums: dict[str, str] | None = None) -> list[RemoteFile]:
    sums = sums or {}
    out = []
    for name in LLMJP_FILES:
        size, sha = LLMJP_KNOWN.get(name, (None, None))
        out.append(RemoteFile(f"{LLMJP_BASE}/{name}?ref_type=heads", name, size, sums.get(name, sha)))
    return out


def _read_sums(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if len(parts) == 2:
            out[parts[1].lstrip("*")] = parts[0]
    return out


def fetch_llmjp(download_dir: str | None = None) -> list[Path]:
    dest = data_dir(download_dir) / "llm-jp-corpus-v3" / "ja" / "ja_wiki"
    sums = _read_sums(dest / "SHA256SUMS")
    hint = f" (e.g. DATA_SOURCE='{dest}/*.jsonl.gz')"
    return [download(r, dest, local_hint=hint) for r in llmjp_remotes(sums)]
