"""Weights & Biases settings shared by every stage.

Mode: ``WANDB_MODE`` if set; otherwise ``online`` when ``WANDB_API_KEY`` is
set and ``offline`` when it is not, so a machine without a key still records
every run under ``<WORK_DIR>/wandb`` (upload later with ``wandb sync``).
The key itself is never logged or written into a config.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jpqwen.paths import WorkDir

VALID_MODES = ("online", "offline", "disabled")


@dataclass(frozen=True)
class WandbSettings:
    mode: str
    project: str
    entity: str | None
    tags: tuple[str, ...] = ()
    dir: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def enabled(self) -> bool:
        return self.mode != "disabled"

    def describe(self) -> str:
        where = f"{self.entity}/{self.project}" if self.entity else self.project
        if self.mode == "offline":
            return f"W&B offline -> {self.dir} (sync later: wandb sync {self.dir}/wandb/offline-run-*)"
        return f"W&B {self.mode} -> {where}"


def wandb_settings(work: WorkDir, stage: str, environ: dict[str, str] | None = None) -> WandbSettings:
    env = os.environ if environ is None else environ
    mode = (env.get("WANDB_MODE") or "").strip().lower()
    if not mode:
        mode = "online" if env.get("WANDB_API_KEY") else "offline"
    if mode == "dryrun":
        mode = "offline"
    if mode not in VALID_MODES:
        from jpqwen.errors import ConfigError

        raise ConfigError(f"WANDB_MODE={mode!r} is not one of {', '.join(VALID_MODES)}")
    tags = tuple(t.strip() for t in (env.get("WANDB_TAGS") or "").split(",") if t.strip())
    return WandbSettings(
        mode=mode,
        project=env.get("WANDB_PROJECT") or "jpqwen",
        entity=env.get("WANDB_ENTITY") or None,
        tags=("jpqwen", stage, *tags),
        dir=work.wandb,
    )


def init_run(settings: WandbSettings, name: str, config: dict[str, Any], job_type: str):
    """Start a W&B run (or return None when disabled). Import is lazy."""
    if not settings.enabled:
        return None
    import wandb

    assert settings.dir is not None
    settings.dir.mkdir(parents=True, exist_ok=True)
    return wandb.init(
        project=settings.project,
        entity=settings.entity,
        name=name,
        job_type=job_type,
        tags=list(settings.tags),
        config=config,
        dir=str(settings.dir),
        mode=settings.mode,
        reinit=True,
    )
