"""`make handoff`: package one verified HF model for the SFT/DPO team.

``<WORK_DIR>/handoff/<name>/`` holds the model (weights, config, tokenizer,
generation config) as exported, plus:

- ``README.md``: the model card, Japanese and English (:mod:`jpqwen.release.card`);
- ``lineage.json``: the records of every stage that led to it (config, inputs, metrics);
- ``eval/results.{json,md,png}`` and ``parity.json``: the measurements the card quotes;
- ``manifest.json`` + ``SHA256SUMS``: size and sha256 of every file.

Before the directory gets its final name it is re-verified: the manifest
matches, ``AutoModelForCausalLM.from_pretrained`` loads it, its next-token
log-probs equal the exported model's (a copy must be exact), it generates, and
no secret from the environment appears in any text file. Optional publishing,
only when the matching token is set (never printed): a W&B model artifact
(``WANDB_API_KEY``) and a Hugging Face Hub upload (``HF_TOKEN`` +
``handoff.hub_repo``).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jpqwen import __version__
from jpqwen.config import section, to_jsonable
from jpqwen.env import redact, secret_items
from jpqwen.errors import ConfigError, InputError, JpqwenError
from jpqwen.io import read_json, write_text_atomic
from jpqwen.paths import WorkDir
from jpqwen.stage import Stage, require_stage

log = logging.getLogger("jpqwen.handoff")

LINEAGE = ("base", "continued", "lora_merged")
UPSTREAM_RECORDS = ("data", "import", "pretrain", "lora", "export", "eval")
VERIFY_PROMPTS = ["日本の首都は", "吾輩は猫である。名前は"]


class HandoffError(JpqwenError):
    """The handoff package failed its own verification."""

    exit_code = 5


@dataclass
class HandoffConfig:
    model: str = "auto"  # base | continued | lora_merged | auto (the last stage of the lineage that was exported)
    name: str = ""  # directory / model name; "" = <run.name>-<model>
    verify_prompts: list[str] = field(default_factory=lambda: list(VERIFY_PROMPTS))
    verify_atol: float = 1e-5  # nats: the package must compute what the export computes (same files)
    wandb_artifact: str = "auto"  # auto = log a W&B model artifact when WANDB_API_KEY is set | always | never
    hub_repo: str = ""  # e.g. my-org/qwen25-05b-ja; uploaded only when HF_TOKEN is set
    hub_private: bool = True


def choose_model(models: dict[str, str], wanted: str) -> str:
    if wanted == "auto":
        present = [s for s in LINEAGE if s in models]
        if not present:
            raise InputError("the export record lists no models", hint="run `make export`")
        return present[-1]
    if wanted not in models:
        raise InputError(
            f"handoff.model={wanted!r} was not exported (exported: {', '.join(models) or 'none'})",
            hint="choose one of those, or run `make export` for it",
        )
    return wanted


def _records(work: WorkDir) -> dict[str, dict]:
    return {n: read_json(work.stamps / f"{n}.json") for n in UPSTREAM_RECORDS if (work.stamps / f"{n}.json").is_file()}


def lineage(records: dict[str, dict], model_stage: str, models: dict[str, str]) -> list[dict[str, Any]]:
    """The chain base -> ... -> model_stage with what each step was and where it came from."""
    steps = [{"stage": "base", "model": "Qwen/Qwen2.5-0.5B", "hf_dir": models.get("base")}]
    sources = {"continued": "pretrain", "lora_merged": "lora"}
    for stage in LINEAGE[1 : LINEAGE.index(model_stage) + 1]:
        rec = records.get(sources[stage], {})
        steps.append(
            {
                "stage": stage,
                "record": sources[stage],
                "checkpoint": (rec.get("outputs") or {}).get("checkpoint"),
                "finished": rec.get("finished"),
                "fingerprint": rec.get("fingerprint"),
                "hf_dir": models.get(stage),
            }
        )
    return steps


def architecture(model_dir: Path, parameters: int) -> dict[str, Any]:
    cfg = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    return {
        "parameters": parameters,
        "shape": f"{cfg.get('num_hidden_layers')} / {cfg.get('hidden_size')} / {cfg.get('num_attention_heads')}"
        f" / {cfg.get('num_key_value_heads')}",
        "vocab_size": cfg.get("vocab_size"),
        "tie_word_embeddings": cfg.get("tie_word_embeddings"),
        "dtype": cfg.get("torch_dtype") or cfg.get("dtype"),
        "max_position_embeddings": cfg.get("max_position_embeddings"),
    }


def check_no_secrets(root: Path) -> None:
    """No secret value from the environment in any text file of the package."""
    secrets = secret_items()
    if not secrets:
        return
    for p in root.rglob("*"):
        if not p.is_file() or p.suffix in (".safetensors", ".bin", ".png", ".pt"):
            continue
        text = p.read_bytes()
        found = sorted(name for name, value in secrets.items() if value.encode() in text)
        if found:  # the variable's name, never its value
            raise HandoffError(
                f"{p} contains the value of the secret environment variable {', '.join(found)}; "
                "the package is not handed over"
            )


def verify_package(root: Path, exported: Path, prompts: list[str], atol: float) -> dict[str, Any]:
    """Manifest intact, loads with AutoModelForCausalLM, same log-probs as the export, generates."""
    from jpqwen.hf.parity import HFLogProbs, compare_logprobs
    from jpqwen.release.manifest import verify_manifest

    problems = verify_manifest(root)
    if problems:
        raise HandoffError(f"{root}: manifest check failed: " + "; ".join(problems[:5]))
    check_no_secrets(root)
    t0 = time.perf_counter()
    package = HFLogProbs(root, device="cpu", dtype="float32")  # AutoModelForCausalLM.from_pretrained inside
    load_s = time.perf_counter() - t0
    source = HFLogProbs(exported, device="cpu", dtype="float32")
    diffs = compare_logprobs(source, package, prompts, top_k=10)
    worst = max(d.max_abs_diff for d in diffs)
    if worst > atol:
        raise HandoffError(f"{root}: log-probs differ from the export {exported} by {worst:.3g} nats (> {atol:g})")
    from jpqwen.hf.generation import Decoder

    gen = Decoder(package.loaded, max_new_tokens=8).generate(prompts[0])
    if gen.new_tokens < 1:
        raise HandoffError(f"{root}: the model generated nothing for {prompts[0]!r}")
    return {
        "manifest": "ok",
        "loads_with": "transformers.AutoModelForCausalLM",
        "load_seconds_cpu": round(load_s, 3),
        "max_abs_logprob_diff_vs_export": worst,
        "sample": {"prompt": prompts[0], "continuation": gen.text},
        "parameters": package.loaded.parameters,
    }


def run(args, cfg: dict, work: WorkDir) -> int:
    from jpqwen.hf.models import dir_signature
    from jpqwen.release.card import hyperparameters, render_card
    from jpqwen.release.manifest import write_manifest

    hcfg = section(cfg, "handoff", HandoffConfig)
    if hcfg.wandb_artifact not in ("auto", "always", "never"):
        raise ConfigError(f"handoff.wandb_artifact must be auto, always or never, got {hcfg.wandb_artifact!r}")
    export = require_stage(work, "export")
    require_stage(work, "eval")
    models = export["outputs"]["models"]
    stage_name = choose_model(models, hcfg.model)
    exported = Path(models[stage_name])
    run_name = (cfg.get("run") or {}).get("name", "jpqwen")
    name = hcfg.name or f"{run_name}-{stage_name}"
    if "/" in name or name.startswith("."):
        raise ConfigError(f"handoff.name {name!r} must be a plain directory name")
    records = _records(work)
    inputs = {
        "model": [str(exported), dir_signature(exported)],
        "records": {k: r.get("fingerprint") for k, r in records.items()},
        "publish": {"wandb": bool(os.environ.get("WANDB_API_KEY")), "hub": bool(os.environ.get("HF_TOKEN"))},
    }
    stage = Stage("handoff", work, {"handoff": to_jsonable(hcfg), "name": name}, inputs, force=args.force)
    if stage.up_to_date():
        log.info("handoff is up to date (%s); --force to redo", stage.stamp_path)
        return 0

    final = work.handoff / name
    partial = work.handoff / f".{name}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(exported, partial, ignore=shutil.ignore_patterns(".*"))

    eval_out = records["eval"]["outputs"]
    (partial / "eval").mkdir()
    for key in ("results_json", "results_md", "results_png"):
        shutil.copyfile(eval_out[key], partial / "eval" / Path(eval_out[key]).name)
    parity_all = read_json(export["outputs"]["parity"]) if export["outputs"].get("parity") else {}
    parity = {k: v for k, v in parity_all.items() if k in ("base", stage_name)}
    write_text_atomic(partial / "parity.json", redact(json.dumps(parity, indent=2, ensure_ascii=False)) + "\n")
    steps = lineage(records, stage_name, models)
    lineage_doc = {"model": name, "stage": stage_name, "steps": steps, "records": records}
    write_text_atomic(partial / "lineage.json", redact(json.dumps(lineage_doc, indent=2, ensure_ascii=False)) + "\n")

    data_card = None
    card_path = (records.get("data", {}).get("outputs") or {}).get("data_card")
    if card_path and Path(card_path).is_file():
        data_card = read_json(card_path)
    info = {
        "name": name,
        "model_stage": stage_name,
        "lineage": steps,
        "architecture": architecture(partial, 0),
        "data": data_card,
        "hyperparameters": {
            s: hyperparameters(records.get(r))
            for s, r in (("continued", "pretrain"), ("lora_merged", "lora"))
            if LINEAGE.index(s) <= LINEAGE.index(stage_name)
        },
        "eval": read_json(eval_out["results_json"]),
        "parity": parity,
        "created": time.strftime("%Y-%m-%d", time.gmtime()),
        "jpqwen": __version__,
    }
    # parameters: count from the safetensors headers, without loading the model twice
    info["architecture"]["parameters"] = _count_parameters(partial)
    write_text_atomic(partial / "README.md", redact(render_card(info)))
    manifest = write_manifest(partial, {"model": name, "stage": stage_name, "source": str(exported)})
    verification = verify_package(partial, exported, hcfg.verify_prompts, hcfg.verify_atol)

    shutil.rmtree(final, ignore_errors=True)
    os.replace(partial, final)
    published = publish(final, name, hcfg, work, cfg)
    outputs = {
        "model_dir": str(final),
        "model_card": str(final / "README.md"),
        "manifest": str(final / "manifest.json"),
    }
    stage.finish(
        outputs,
        {
            "stage": stage_name,
            "files": manifest["file_count"],
            "bytes": manifest["total_bytes"],
            "verification": verification,
            "published": published,
        },
    )
    print(f"jpqwen handoff: {final} ({manifest['file_count']} files, {manifest['total_bytes'] / 2**20:.1f} MiB)")
    print(f"  verified: loads with AutoModelForCausalLM, identical log-probs, sample: {verification['sample']}")
    return 0


def _count_parameters(model_dir: Path) -> int:
    from safetensors import safe_open

    seen = 0
    for f in sorted(model_dir.glob("*.safetensors")):
        with safe_open(str(f), framework="pt") as h:
            for key in h.keys():  # noqa: SIM118 (a safetensors handle, not a dict)
                shape = h.get_slice(key).get_shape()
                n = 1
                for d in shape:
                    n *= d
                seen += n
    return seen


def publish(root: Path, name: str, hcfg: HandoffConfig, work: WorkDir, cfg: dict) -> dict[str, Any]:
    """W&B artifact and/or HF Hub upload, each only when its token is set. Errors never show a token."""
    done: dict[str, Any] = {}
    want_wandb = hcfg.wandb_artifact == "always" or (
        hcfg.wandb_artifact == "auto" and bool(os.environ.get("WANDB_API_KEY"))
    )
    if want_wandb:
        done["wandb"] = _publish_wandb(root, name, work, cfg)
    if hcfg.hub_repo:
        if not os.environ.get("HF_TOKEN"):
            log.warning("handoff.hub_repo=%s but HF_TOKEN is not set: not uploading", hcfg.hub_repo)
            done["hub"] = "skipped: HF_TOKEN not set"
        else:
            done["hub"] = _publish_hub(root, hcfg)
    return done


def _publish_wandb(root: Path, name: str, work: WorkDir, cfg: dict) -> str:
    from jpqwen.monitoring import init_run, wandb_settings

    settings = wandb_settings(work, "handoff")
    wb = init_run(settings, f"{name}-handoff", {"handoff": name}, job_type="handoff")
    if wb is None:
        return "skipped: W&B disabled"
    import wandb

    art = wandb.Artifact(name.replace("_", "-"), type="model", metadata={"stage": name})
    art.add_dir(str(root))
    wb.log_artifact(art)
    wb.finish()
    return f"{settings.mode}: artifact {art.name}"


def _publish_hub(root: Path, hcfg: HandoffConfig) -> str:
    from huggingface_hub import HfApi

    token = os.environ["HF_TOKEN"]
    try:
        api = HfApi(token=token)
        api.create_repo(hcfg.hub_repo, private=hcfg.hub_private, exist_ok=True, repo_type="model")
        api.upload_folder(folder_path=str(root), repo_id=hcfg.hub_repo, repo_type="model")
    except Exception as exc:  # network, auth, offline mode: say what failed, never the token
        raise JpqwenError(
            redact(f"upload to the Hugging Face Hub ({hcfg.hub_repo}) failed: {type(exc).__name__}: {exc}"),
            hint=f"the verified package is in {root}; fix the cause and run `make handoff FORCE=1`",
        ) from None
    return f"https://huggingface.co/{hcfg.hub_repo}"
