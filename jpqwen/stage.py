"""Stage bookkeeping: skip finished work, record what each stage did.

Every stage ends by writing ``<WORK_DIR>/stamps/<stage>.json``: the resolved
config, a fingerprint of config + inputs, the outputs it wrote and its
metrics. Make uses these files as its targets; a stage started again with the
same fingerprint and all outputs present does nothing (``--force`` redoes it).
The next stage finds its inputs from the previous stage's record, never from a
path typed by hand.
"""

from __future__ import annotations

import platform
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jpqwen import __version__
from jpqwen.config import fingerprint, to_jsonable
from jpqwen.errors import JpqwenError
from jpqwen.io import read_json, write_json_atomic
from jpqwen.paths import WorkDir


@dataclass
class Stage:
    name: str
    work: WorkDir
    config: Any
    inputs: Any = None
    force: bool = False
    started: float = field(default_factory=time.time)

    @property
    def stamp_path(self) -> Path:
        return self.work.stamps / f"{self.name}.json"

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.name, self.config, self.inputs)

    def previous(self) -> dict | None:
        return read_json(self.stamp_path) if self.stamp_path.is_file() else None

    def up_to_date(self) -> bool:
        """True when a finished record matches this config+inputs and its outputs exist.

        When true, the stamp's time is refreshed so that Make, which re-ran the
        stage because something upstream was touched, sees it current again.
        """
        if self.force:
            return False
        rec = self.previous()
        if not rec or rec.get("fingerprint") != self.fingerprint:
            return False
        if not all(_output_exists(key, path) for key, path in _flat_paths(rec.get("outputs", {}))):
            return False
        self.stamp_path.touch()
        return True

    def finish(self, outputs: dict[str, Any], metrics: dict[str, Any] | None = None) -> Path:
        record = {
            "stage": self.name,
            "fingerprint": self.fingerprint,
            "jpqwen": __version__,
            "started": _iso(self.started),
            "finished": _iso(time.time()),
            "seconds": round(time.time() - self.started, 3),
            "host": socket.gethostname(),
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "config": to_jsonable(self.config),
            "inputs": to_jsonable(self.inputs),
            "outputs": to_jsonable(outputs),
            "metrics": to_jsonable(metrics or {}),
        }
        return write_json_atomic(self.stamp_path, record)


def require_stage(work: WorkDir, name: str, make_target: str | None = None) -> dict:
    """The record of a finished upstream stage, or a clear error saying what to run."""
    path = work.stamps / f"{name}.json"
    if not path.is_file():
        raise JpqwenError(
            f"stage {name!r} has not finished in {work.root} (no {path})",
            hint=f"run `make {make_target or name}` first (WORK_DIR={work.root})",
        )
    return read_json(path)


def _flat_paths(outputs: Any, key: str = "") -> list[tuple[str, str]]:
    """(key, absolute path) for every path recorded in a stage's outputs."""
    if isinstance(outputs, dict):
        return [kp for k, v in outputs.items() for kp in _flat_paths(v, str(k))]
    if isinstance(outputs, list):
        return [kp for v in outputs for kp in _flat_paths(v, key)]
    if isinstance(outputs, str) and outputs.startswith("/"):
        return [(key, outputs)]
    return []


def _output_exists(key: str, path: str) -> bool:
    if key.endswith("_prefix"):  # a Megatron dataset prefix: <prefix>.bin + <prefix>.idx
        return Path(path + ".bin").is_file() and Path(path + ".idx").is_file()
    return Path(path).exists()


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))
