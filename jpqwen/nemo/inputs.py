"""Upstream outputs the NeMo stages consume, found from ``<WORK_DIR>/stamps`` (never typed by hand).

Each resolver returns the finished stage's outputs, or (``allow_pending=True``,
for ``make plan``) the paths that stage would produce, marked pending.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from jpqwen.errors import InputError, JpqwenError
from jpqwen.nemo.settings import ImportSettings
from jpqwen.paths import WorkDir
from jpqwen.stage import require_stage

# What `make data` writes is described by its stamp; these stand in for the plan only.
PENDING_DATA = {
    "train_prefix": "pending-make-data/ja_train_text_document",
    "validation_prefix": "pending-make-data/ja_validation_text_document",
    "en_replay_prefix": "pending-make-data/en_replay_text_document",
    "validation_jsonl": "pending-make-data/ja_validation.jsonl",
    "en_validation_jsonl": "pending-make-data/en_validation.jsonl",
}


@dataclass(frozen=True)
class DataInputs:
    train_prefix: str
    validation_prefix: str
    en_replay_prefix: str | None
    validation_jsonl: str | None
    en_validation_jsonl: str | None
    pending: bool = False


@dataclass(frozen=True)
class ImportInputs:
    nemo_checkpoint: str
    hf_dir: str
    pending: bool = False


@dataclass(frozen=True)
class PretrainInputs:
    checkpoint: str
    pending: bool = False


def _stamp_outputs(work: WorkDir, stage: str, make_target: str, allow_pending: bool) -> dict | None:
    try:
        return require_stage(work, stage, make_target).get("outputs", {})
    except JpqwenError:
        if allow_pending:
            return None
        raise


def _need(outputs: dict, key: str, stage: str, work: WorkDir) -> str:
    value = outputs.get(key)
    if not value:
        raise InputError(
            f"{work.stamps / (stage + '.json')}: outputs has no {key!r}",
            hint=f"re-run `make {stage}` (FORCE=1) so it records {key}",
        )
    return str(value)


def data_inputs(work: WorkDir, allow_pending: bool = False) -> DataInputs:
    out = _stamp_outputs(work, "data", "data", allow_pending)
    if out is None:
        p = {k: str(work.data / v) for k, v in PENDING_DATA.items()}
        return DataInputs(**p, pending=True)
    return DataInputs(
        train_prefix=_need(out, "train_prefix", "data", work),
        validation_prefix=_need(out, "validation_prefix", "data", work),
        en_replay_prefix=out.get("en_replay_prefix") or None,
        validation_jsonl=out.get("validation_jsonl") or None,
        en_validation_jsonl=out.get("en_validation_jsonl") or None,
    )


def check_megatron_prefix(prefix: str, what: str) -> None:
    """A Megatron dataset prefix must have its .bin and .idx (PreTrainingDataModule checks too, less clearly)."""
    missing = [prefix + ext for ext in (".bin", ".idx") if not os.path.isfile(prefix + ext)]
    if missing:
        raise InputError(
            f"{what}: Megatron dataset files missing: {', '.join(missing)}",
            hint="re-run `make data` (FORCE=1); the data stamp points at files that are gone",
        )


def import_output_dir(work: WorkDir, s: ImportSettings) -> Path:
    return work.models / s.name


def import_inputs(work: WorkDir, s: ImportSettings, allow_pending: bool = False) -> ImportInputs:
    out = _stamp_outputs(work, "import", "import", allow_pending)
    if out is None:
        from jpqwen.nemo.import_ckpt import predicted_hf_dir

        return ImportInputs(str(import_output_dir(work, s)), predicted_hf_dir(s), pending=True)
    return ImportInputs(_need(out, "nemo_checkpoint", "import", work), _need(out, "hf_dir", "import", work))


def pretrain_inputs(work: WorkDir, allow_pending: bool = False) -> PretrainInputs:
    out = _stamp_outputs(work, "pretrain", "pretrain", allow_pending)
    if out is None:
        return PretrainInputs(str(work.runs / "pretrain" / "pending-make-pretrain" / "checkpoints" / "last"), True)
    return PretrainInputs(_need(out, "checkpoint", "pretrain", work))


_STEP = re.compile(r"(?:^|-)step=(\d+)")


def checkpoint_step(path: str | Path) -> int | None:
    m = _STEP.search(Path(path).name)
    return int(m.group(1)) if m else None


def find_final_checkpoint(checkpoints_dir: str | Path, require_context: bool = True) -> Path:
    """The NeMo checkpoint with the highest step under ``checkpoints_dir`` (``-last`` wins a tie).

    A NeMo 2 checkpoint is a directory with ``weights/`` and ``context/`` (a LoRA one may
    hold only the adapter ``weights/``), named by ``ModelCheckpoint`` as
    ``<model>--val_loss=..-step=<n>-consumed_samples=..[-last]``.
    """
    root = Path(checkpoints_dir)
    found = []
    for d in root.iterdir() if root.is_dir() else []:
        m = _STEP.search(d.name)
        if m and (d / "weights").is_dir() and (not require_context or (d / "context").is_dir()):
            found.append((int(m.group(1)), d.name.endswith("-last"), d))
    if not found:
        raise InputError(
            f"no NeMo checkpoint (a dir with weights/ and context/ named ...-step=N-...) under {root}",
            hint="the training run ended before its first checkpoint; see its log in the same run directory",
        )
    return max(found, key=lambda t: (t[0], t[1]))[2]
