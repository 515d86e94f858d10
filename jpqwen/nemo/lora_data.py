"""LoRA data: instruction pairs ``{"input": ..., "output": ...}`` -> ``<dataset_root>/{training,validation}.jsonl``.

The source is a jsonl file (default: the small Japanese set shipped in
``jpqwen/resources/sample/lora/``) or a Hugging Face dataset id whose columns
are mapped to input/output (e.g. a Japanese Dolly translation with
``instruction``/``input``/``output``). Every line is checked; a bad line is an
error naming the file and line, never silently dropped. The corpus's held-out
validation split is refused: training on it would leak into evaluation.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

from jpqwen.config import REPO_ROOT, fingerprint
from jpqwen.errors import InputError, OfflineError
from jpqwen.io import sha256_file, write_text_atomic
from jpqwen.nemo.inputs import DataInputs
from jpqwen.nemo.settings import LoraSettings
from jpqwen.paths import WorkDir


@dataclass(frozen=True)
class LoraDataset:
    root: Path  # FineTuningDataModule's dataset_root
    train_examples: int
    validation_examples: int
    source: str
    pending: bool = False


def _local_path(ref: str | None) -> Path | None:
    if not ref:
        return None
    p = Path(ref).expanduser()
    for cand in (p, REPO_ROOT / p):
        if cand.is_file():
            return cand.resolve()
    return None


def read_pairs(path: Path) -> list[dict[str, str]]:
    """Read and check a jsonl of ``input``/``output`` pairs (errors name file:line)."""
    pairs = []
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from None
            if not isinstance(rec, dict):
                raise InputError(f"{path}:{lineno}: expected an object with 'input' and 'output'")
            for key in ("input", "output"):
                if not isinstance(rec.get(key), str) or not rec[key].strip():
                    raise InputError(f"{path}:{lineno}: field {key!r} must be a non-empty string")
            pairs.append({"input": rec["input"], "output": rec["output"]})
    if not pairs:
        raise InputError(f"{path}: no instruction pairs")
    return pairs


def refuse_eval_data(path: Path, data: DataInputs | None) -> None:
    """The corpus's held-out splits are for evaluation only."""
    if data is None or data.pending:
        return
    for key in ("validation_jsonl", "en_validation_jsonl"):
        held_out = getattr(data, key)
        if not held_out or not Path(held_out).is_file():
            continue
        held = Path(held_out).resolve()
        if path.resolve() == held or sha256_file(path) == sha256_file(held):
            raise InputError(
                f"{path} is the corpus's held-out split (data stamp {key}: {held}); LoRA data must not come "
                "from it, or the evaluation would score text the model was trained on",
                hint="use an instruction dataset (--set lora.dataset=<jsonl or HF dataset id>)",
            )


def _hf_pairs(s: LoraSettings, dataset_id: str) -> list[dict[str, str]]:
    try:
        import datasets
    except ImportError as exc:  # pragma: no cover - the [nemo] extra has it
        raise InputError("an HF dataset id needs the `datasets` package") from exc
    try:
        ds = datasets.load_dataset(dataset_id, split=s.hf_split)
    except Exception as exc:
        raise OfflineError(
            f"could not load HF dataset {dataset_id!r} split {s.hf_split!r}: {type(exc).__name__}: {str(exc)[:200]}",
            hint="offline? download it where the hub is reachable, or pass a local jsonl: --set lora.dataset=path",
        ) from None
    missing = [c for c in [*s.input_fields, s.output_field] if c not in ds.column_names]
    if missing:
        raise InputError(
            f"HF dataset {dataset_id}: no column(s) {missing}; it has {ds.column_names}",
            hint="set lora.input_fields / lora.output_field",
        )
    pairs, skipped = [], 0
    for row in ds:
        prompt = "\n".join(str(row[c]).strip() for c in s.input_fields if row.get(c) and str(row[c]).strip())
        answer = str(row[s.output_field] or "").strip()
        if prompt and answer:
            pairs.append({"input": prompt, "output": answer})
        else:
            skipped += 1
    if not pairs:
        raise InputError(f"HF dataset {dataset_id}: no row has both an input and an output")
    if skipped:
        import logging

        logging.getLogger(__name__).warning("%s: %d rows without input or output were skipped", dataset_id, skipped)
    return pairs


def prepare(s: LoraSettings, work: WorkDir, data: DataInputs | None, seed: int) -> LoraDataset:
    """Write training.jsonl / validation.jsonl under ``<WORK_DIR>/data/lora/<fingerprint>/``."""
    train_path = _local_path(s.dataset)
    if train_path is not None:
        refuse_eval_data(train_path, data)
        train = read_pairs(train_path)
        source = str(train_path)
        key = sha256_file(train_path)
    elif "/" in s.dataset and not s.dataset.endswith((".jsonl", ".json")):
        train = _hf_pairs(s, s.dataset)
        source, key = f"hf:{s.dataset}:{s.hf_split}", fingerprint(s.dataset, s.hf_split, s.input_fields)
    else:
        raise InputError(f"lora.dataset {s.dataset!r}: no such file (relative paths start at {REPO_ROOT})")

    val_path = _local_path(s.validation)
    if s.validation and val_path is None and train_path is not None:
        raise InputError(f"lora.validation {s.validation!r}: no such file")
    if val_path is not None:
        refuse_eval_data(val_path, data)
        validation = read_pairs(val_path)
        key = fingerprint(key, sha256_file(val_path))
    else:  # hold out a deterministic fraction of the training pairs
        rng = random.Random(seed)
        order = list(range(len(train)))
        rng.shuffle(order)
        n_val = max(1, round(s.validation_fraction * len(train)))
        if n_val >= len(train):
            raise InputError(f"{source}: {len(train)} pairs are too few to hold out a validation set")
        held = set(order[:n_val])
        validation = [p for i, p in enumerate(train) if i in held]
        train = [p for i, p in enumerate(train) if i not in held]
        key = fingerprint(key, "split", s.validation_fraction, seed)

    root = work.data / "lora" / key[:12]
    for name, rows in (("training.jsonl", train), ("validation.jsonl", validation)):
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        target = root / name
        if not target.is_file() or target.read_text(encoding="utf-8") != text:
            write_text_atomic(target, text)
    return LoraDataset(root, len(train), len(validation), source)


def pending(s: LoraSettings, work: WorkDir) -> LoraDataset:
    return LoraDataset(work.data / "lora" / "pending", 0, 0, s.dataset, pending=True)
