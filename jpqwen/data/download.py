"""Resumable HTTP download: Range requests, retries with backoff, size + sha256, atomic rename.

A download goes to ``<name>.part`` beside the final file; an interrupted one is
continued from the bytes already there (HTTP Range), and the final name only
appears once the size (and sha256, when known) check out. A server that
ignores Range gets the file again from the start.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from jpqwen.errors import InputError, OfflineError

log = logging.getLogger("jpqwen.data")

USER_AGENT = "jpqwen-data/0.1 (+https://github.com/; resumable downloader)"


@dataclass(frozen=True)
class RemoteFile:
    url: str
    name: str
    size: int | None = None  # bytes, when known (Git LFS pointer 'size')
    sha256: str | None = None  # hex, when known (Git LFS pointer 'oid sha256:...')


def _quiet() -> bool:
    return bool(os.environ.get("CI"))


def download(
    remote: RemoteFile,
    dest_dir: str | Path,
    *,
    retries: int = 5,
    backoff_s: float = 2.0,
    timeout_s: float = 60.0,
    chunk_bytes: int = 1 << 20,
    local_hint: str = "",
) -> Path:
    """Fetch ``remote`` into ``dest_dir/remote.name``; return the final path."""
    dest = Path(dest_dir) / remote.name
    if dest.is_file() and (remote.size is None or dest.stat().st_size == remote.size):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    last_error: Exception | None = None
    total: int | None = remote.size
    for attempt in range(retries + 1):
        if attempt:
            wait = backoff_s * 2 ** (attempt - 1)
            log.warning("download %s: %s; retry %d/%d in %.1f s", remote.name, last_error, attempt, retries, wait)
            time.sleep(wait)
        have = part.stat().st_size if part.exists() else 0
        if total is not None and have == total:
            break
        headers = {"User-Agent": USER_AGENT}
        if have:
            headers["Range"] = f"bytes={have}-"
        try:
            with urllib.request.urlopen(urllib.request.Request(remote.url, headers=headers), timeout=timeout_s) as resp:
                if have and resp.status == 206:
                    start = _content_range_start(resp.headers.get("Content-Range"))
                    if start != have:
                        raise InputError(f"{remote.url}: server resumed at byte {start}, expected {have}")
                    mode = "ab"
                else:  # 200: full body (first request, or a server that ignores Range)
                    have, mode = 0, "wb"
                length = resp.headers.get("Content-Length")
                if length is not None:
                    total = have + int(length)
                with (
                    open(part, mode) as out,
                    tqdm(
                        total=total,
                        initial=have,
                        unit="B",
                        unit_scale=True,
                        desc=f"download {remote.name}",
                        disable=_quiet(),
                    ) as bar,
                ):
                    while True:
                        block = resp.read(chunk_bytes)
                        if not block:
                            break
                        out.write(block)
                        bar.update(len(block))
            got = part.stat().st_size
            if total is not None and got < total:
                last_error = OSError(f"connection closed after {got} of {total} bytes")
                continue
            break
        except urllib.error.HTTPError as exc:
            if exc.code == 416 and total is not None and have == total:
                break  # nothing left to fetch
            if exc.code in (408, 425, 429) or exc.code >= 500:
                last_error = exc
                continue
            raise InputError(f"{remote.url}: HTTP {exc.code} {exc.reason}") from None
        except (urllib.error.URLError, http.client.HTTPException, OSError, TimeoutError) as exc:
            last_error = exc
            continue
    else:
        raise OfflineError(
            f"could not download {remote.url} after {retries + 1} tries: {last_error}",
            hint=(
                f"no network? copy the file to {dest} (it is used as-is) "
                f"or point DATA_SOURCE at local copies{local_hint}; "
                f"a partial download is kept in {part} and resumed next time"
            ),
        )
    _verify(part, remote, total)
    os.replace(part, dest)
    return dest


def _content_range_start(value: str | None) -> int:
    # "bytes 100-999/1000"
    try:
        return int(value.split()[1].split("-")[0])  # type: ignore[union-attr]
    except (AttributeError, IndexError, ValueError):
        raise InputError(f"server sent a 206 without a usable Content-Range ({value!r})") from None


def _verify(part: Path, remote: RemoteFile, total: int | None) -> None:
    size = part.stat().st_size
    want = remote.size if remote.size is not None else total
    if want is not None and size != want:
        raise InputError(f"{remote.url}: got {size} bytes, expected {want}; {part} kept to resume")
    if remote.sha256:
        h = hashlib.sha256()
        with open(part, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        if h.hexdigest() != remote.sha256.lower():
            bad = part.with_name(part.name.replace(".part", ".corrupt"))
            os.replace(part, bad)
            raise InputError(
                f"{remote.url}: sha256 {h.hexdigest()} != expected {remote.sha256}; moved to {bad}",
                hint="run again to download afresh (delete the .corrupt file when done)",
            )
