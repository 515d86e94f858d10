"""A manifest of every file in a handoff directory: size and sha256.

``manifest.json`` is for programs; ``SHA256SUMS`` is the same list in the
format ``sha256sum -c SHA256SUMS`` checks. Neither lists itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jpqwen.io import sha256_file, write_json_atomic, write_text_atomic

MANIFEST = "manifest.json"
SUMS = "SHA256SUMS"


def package_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and p.name not in (MANIFEST, SUMS))


def build_manifest(root: str | Path, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    root = Path(root)
    files = [
        {"path": p.relative_to(root).as_posix(), "bytes": p.stat().st_size, "sha256": sha256_file(p)}
        for p in package_files(root)
    ]
    return {
        **(extra or {}),
        "algorithm": "sha256",
        "files": files,
        "file_count": len(files),
        "total_bytes": sum(f["bytes"] for f in files),
    }


def write_manifest(root: str | Path, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    root = Path(root)
    manifest = build_manifest(root, extra)
    write_json_atomic(root / MANIFEST, manifest)
    write_text_atomic(root / SUMS, "".join(f"{f['sha256']}  {f['path']}\n" for f in manifest["files"]))
    return manifest


def verify_manifest(root: str | Path) -> list[str]:
    """Problems found (empty = every listed file is present and intact, and nothing is unlisted)."""
    import json

    root = Path(root)
    path = root / MANIFEST
    if not path.is_file():
        return [f"{path} is missing"]
    manifest = json.loads(path.read_text(encoding="utf-8"))
    problems = []
    listed = set()
    for f in manifest["files"]:
        p = root / f["path"]
        listed.add(f["path"])
        if not p.is_file():
            problems.append(f"{f['path']}: missing")
        elif p.stat().st_size != f["bytes"] or sha256_file(p) != f["sha256"]:
            problems.append(f"{f['path']}: content differs from the manifest (sha256)")
    for p in package_files(root):
        if p.relative_to(root).as_posix() not in listed:
            problems.append(f"{p.relative_to(root).as_posix()}: not in the manifest")
    return problems
