"""`make export`: NeMo checkpoints -> Hugging Face directories, verified.

For the continual-pretraining checkpoint (``pretrain`` record) and the LoRA
result (``lora`` record, merged into its base with ``llm.peft.merge_lora``):

1. ``llm.export_ckpt(path, target='hf')`` in a NeMo worker process
   (:mod:`jpqwen.release.nemo_worker`) into ``<WORK_DIR>/export/.<name>.partial``.
2. :func:`finalize_hf_dir`: the base model's tokenizer files and
   ``generation_config.json`` are copied in (NeMo's exporter writes no
   generation config), and config fields NeMo's exporter sets from the
   *training* sequence length (``max_position_embeddings``, ``sliding_window``)
   are restored from the base model's config: RoPE does not depend on them,
   and Qwen2.5-0.5B's 32k context is unchanged by training on shorter sequences.
   Every change is listed in the parity report.
3. Parity (:mod:`jpqwen.hf.parity`): reference = the NeMo checkpoint through
   Megatron's forward (the LoRA checkpoint with its adapters *unmerged*);
   candidate = the HF directory. A failure leaves the directory as
   ``<name>.rejected`` and stops the stage with the worst prompt and token.
4. Only then is the directory renamed to ``<WORK_DIR>/export/<name>``.

The base model needs no export (its HF directory from ``make import`` is used
as is); with ``export.check_import`` the imported NeMo checkpoint is checked
against it the same way, which proves the HF -> NeMo -> HF round trip.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jpqwen.config import section, to_jsonable
from jpqwen.errors import InputError, JpqwenError
from jpqwen.io import write_json_atomic, write_text_atomic
from jpqwen.paths import WorkDir
from jpqwen.stage import Stage, require_stage

log = logging.getLogger("jpqwen.export")

DEFAULT_PARITY_PROMPTS = [
    "日本の首都は東京です。",
    "富士山は日本で一番高い山で、標高は3776メートルである。",
    "平安京は、794年に桓武天皇によって定められた都である。",
    "吾輩は猫である。名前はまだ無い。",
    "機械学習とは、データから規則性を学ぶ方法の総称である。",
    "The capital of Japan is Tokyo.",
]
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.json",
    "merges.txt",
    "special_tokens_map.json",
    "added_tokens.json",
)
# config.json fields restored from the base model (NeMo's exporter derives them from the training seq length)
BASE_CONFIG_FIELDS = ("max_position_embeddings", "sliding_window", "use_sliding_window", "max_window_layers")


@dataclass
class ExportConfig:
    stages: list[str] = field(default_factory=lambda: ["continued", "lora_merged"])  # exported when upstream exists
    check_import: bool = True  # also verify the imported NeMo checkpoint against the base HF model
    parity_prompts: list[str] = field(default_factory=lambda: list(DEFAULT_PARITY_PROMPTS))
    parity_top_k: int = 10  # compare the reference's k most likely next tokens at every position
    parity_atol: float = 0.05  # nats; max |log p_ref - log p_hf| allowed (float32 compute on both sides)
    parity_dtype: str = "float32"  # compute dtype of both forwards (bfloat16 needs atol ~0.3)
    device: str = "auto"  # where the HF candidate runs


def finalize_hf_dir(exported: str | Path, base_dir: str | Path) -> list[str]:
    """Give a NeMo-exported HF dir the base model's tokenizer + generation config; list every change."""
    out, base = Path(exported), Path(base_dir)
    changes = []
    for name in TOKENIZER_FILES:
        if (base / name).is_file():
            shutil.copyfile(base / name, out / name)
            changes.append(f"copied {name} from the base model")
    if (base / "generation_config.json").is_file():
        shutil.copyfile(base / "generation_config.json", out / "generation_config.json")
        changes.append("copied generation_config.json from the base model")
    else:
        raise InputError(f"the base model {base} has no generation_config.json to hand on")
    cfg_path = out / "config.json"
    cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    base_cfg = json.loads((base / "config.json").read_text(encoding="utf-8"))
    for key in BASE_CONFIG_FIELDS:
        if key in base_cfg and cfg.get(key) != base_cfg[key]:
            changes.append(f"config.json {key}: {cfg.get(key)!r} -> {base_cfg[key]!r} (from the base model)")
            cfg[key] = base_cfg[key]
    write_text_atomic(cfg_path, json.dumps(cfg, indent=2, ensure_ascii=False) + "\n")
    return changes


def parity_or_raise(report, out_dir: Path, name: str, changes: list[str] | None = None) -> dict[str, Any]:
    """Write ``<name>.parity.json``; on failure stop with the report's summary (names the worst prompt/token)."""
    from jpqwen.hf.parity import ParityError

    record = {**report.to_dict(), "finalize_changes": list(changes or [])}
    write_json_atomic(out_dir / f"{name}.parity.json", record)
    if not report.passed:
        raise ParityError(report.summary(), hint=f"details: {out_dir / f'{name}.parity.json'}")
    log.info("%s", report.summary())
    return record


def _worker(op: str, checkpoint: str | Path, out: str | Path, **extra: str) -> None:
    cmd = [sys.executable, "-m", "jpqwen.release.nemo_worker", op, "--checkpoint", str(checkpoint), "--out", str(out)]
    for key, value in extra.items():
        cmd += [f"--{key}", str(value)]
    log.info("running %s", " ".join(cmd))
    rc = subprocess.call(cmd)
    if rc != 0:
        raise JpqwenError(f"NeMo {op} of {checkpoint} failed (exit {rc}); its log is above")


def run(args, cfg: dict, work: WorkDir) -> int:
    from jpqwen.gpu import require_gpu

    require_gpu("export")  # before anything imports NeMo: a CPU machine stops here in seconds
    from jpqwen.hf.models import dir_signature
    from jpqwen.hf.parity import PrecomputedLogProbs, verify_export

    ex = section(cfg, "export", ExportConfig)
    imp = require_stage(work, "import").get("outputs", {})
    base_dir = imp.get("hf_dir")
    if not base_dir:
        raise InputError(f"the import record ({work.stamps / 'import.json'}) has no hf_dir")
    sources: dict[str, str] = {}
    if "continued" in ex.stages:
        sources["continued"] = require_stage(work, "pretrain")["outputs"]["checkpoint"]
    if "lora_merged" in ex.stages:
        if (work.stamps / "lora.json").is_file():
            sources["lora_merged"] = require_stage(work, "lora")["outputs"]["checkpoint"]
        else:
            log.warning("no lora record in %s: exporting without the LoRA stage", work.stamps)
    inputs = {
        "base": [base_dir, dir_signature(base_dir)],
        "nemo_checkpoint": imp.get("nemo_checkpoint") if ex.check_import else None,
        "sources": {k: [v, dir_signature(v)] for k, v in sources.items()},
    }
    stage = Stage("export", work, {"export": to_jsonable(ex)}, inputs, force=args.force)
    if stage.up_to_date():
        log.info("export is up to date (%s); --force to redo", stage.stamp_path)
        return 0

    out_dir = work.export
    out_dir.mkdir(parents=True, exist_ok=True)
    prompts_file = out_dir / "parity_prompts.json"
    write_json_atomic(prompts_file, ex.parity_prompts)
    reports: dict[str, Any] = {}

    def reference(name: str, checkpoint: str) -> PrecomputedLogProbs:
        ref_path = out_dir / f"{name}.reference.pt"
        _worker("logprobs", checkpoint, ref_path, prompts=prompts_file, dtype=ex.parity_dtype)
        return PrecomputedLogProbs(ref_path)

    def verify(name: str, ref, candidate: Path, changes: list[str] | None = None) -> None:
        report = verify_export(
            ref, candidate, ex.parity_prompts, ex.parity_top_k, ex.parity_atol, ex.device, ex.parity_dtype
        )
        reports[name] = parity_or_raise(report, out_dir, name, changes)

    if ex.check_import and imp.get("nemo_checkpoint"):
        verify("base", reference("base", imp["nemo_checkpoint"]), Path(base_dir))

    models = {"base": str(base_dir)}
    for name, checkpoint in sources.items():
        partial, final, rejected = out_dir / f".{name}.partial", out_dir / name, out_dir / f"{name}.rejected"
        for d in (partial, rejected):
            shutil.rmtree(d, ignore_errors=True)
        to_export = checkpoint
        if name == "lora_merged":
            to_export = out_dir / "lora_merged.nemo"
            shutil.rmtree(to_export, ignore_errors=True)
            _worker("merge", checkpoint, to_export)
        _worker("export", to_export, partial)
        changes = finalize_hf_dir(partial, base_dir)
        try:
            verify(name, reference(name, checkpoint), partial, changes)
        except JpqwenError:
            os.replace(partial, rejected)
            raise
        shutil.rmtree(final, ignore_errors=True)
        os.replace(partial, final)
        models[name] = str(final)

    parity_path = write_json_atomic(out_dir / "parity.json", reports)
    write_text_atomic(out_dir / "parity.md", render_parity_md(reports))
    stage.finish(
        {"models": models, "parity": str(parity_path)},
        {name: {"max_abs_diff": r["max_abs_diff"], "passed": r["passed"]} for name, r in reports.items()},
    )
    print(render_parity_md(reports))
    return 0


def render_parity_md(reports: dict[str, Any]) -> str:
    lines = [
        "| model | result | max abs Δ log p (nats) | mean abs Δ | top-1 agreement | tolerance | dtype |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for name, r in reports.items():
        prompts = r.get("prompts") or []
        mean = sum(p["mean_abs_diff"] for p in prompts) / max(len(prompts), 1)
        agree = sum(p["top1_agreement"] for p in prompts) / max(len(prompts), 1)
        lines.append(
            f"| {name} | {'PASS' if r['passed'] else 'FAIL'} | {r['max_abs_diff']:.3g} | {mean:.3g} | "
            f"{agree:.1%} | {r['atol']:g} | {r['dtype']} |"
        )
    return "\n".join(lines) + "\n"
