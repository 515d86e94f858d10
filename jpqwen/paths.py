"""Where every artifact lands. One root (``WORK_DIR``), one layout.

::

    <WORK_DIR>/
      data/        make data     Megatron .bin/.idx, data_card.{json,md,png}, validation jsonl
      models/      make import   NeMo checkpoint of the base model (+ its HF tokenizer)
      runs/        make pretrain / make lora   NeMo-Run experiments, checkpoints, TensorBoard
      export/      make export   Hugging Face exports (continued, lora-merged) + parity reports
      eval/        make eval     results.json, results.md, results.png
      handoff/     make handoff  the verified HF model + model card for the SFT/DPO team
      plans/       make plan     fully resolved recipes as YAML
      stamps/      one JSON per finished stage: config, fingerprint, outputs, metrics
      wandb/       W&B run files (offline runs sync later with `wandb sync`)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from jpqwen.config import REPO_ROOT

DEFAULT_WORK_DIR = REPO_ROOT / "work"


@dataclass(frozen=True)
class WorkDir:
    root: Path

    @classmethod
    def from_env(cls, override: str | os.PathLike | None = None) -> WorkDir:
        raw = override or os.environ.get("WORK_DIR") or DEFAULT_WORK_DIR
        return cls(Path(raw).expanduser().resolve())

    def _sub(self, name: str) -> Path:
        return self.root / name

    @property
    def data(self) -> Path:
        return self._sub("data")

    @property
    def models(self) -> Path:
        return self._sub("models")

    @property
    def runs(self) -> Path:
        return self._sub("runs")

    @property
    def export(self) -> Path:
        return self._sub("export")

    @property
    def eval(self) -> Path:
        return self._sub("eval")

    @property
    def handoff(self) -> Path:
        return self._sub("handoff")

    @property
    def plans(self) -> Path:
        return self._sub("plans")

    @property
    def stamps(self) -> Path:
        return self._sub("stamps")

    @property
    def wandb(self) -> Path:
        return self._sub("wandb")

    @property
    def cache(self) -> Path:
        return self._sub("cache")
