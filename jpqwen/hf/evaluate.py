"""`make eval`: score every exported stage on held-out text and fixed prompts.

Inputs (from stage records): the export record's ``models`` (base /
continued / lora_merged HF directories, whichever exist) and the data record's
``validation_jsonl`` (held-out Japanese) and ``en_validation_jsonl`` (English,
to see forgetting). For each stage: Japanese and English bits per character
(:mod:`jpqwen.hf.bpc`) and greedy continuations of fixed prompts. Outputs
``<WORK_DIR>/eval/results.{json,md,png}`` and the same numbers in W&B.
"""

from __future__ import annotations

import gc
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jpqwen.config import section, to_jsonable
from jpqwen.errors import InputError
from jpqwen.io import write_json_atomic, write_text_atomic
from jpqwen.paths import WorkDir
from jpqwen.stage import Stage, require_stage

log = logging.getLogger("jpqwen.eval")

STAGE_ORDER = ("base", "continued", "lora_merged")
STAGE_LABELS = {"base": "Qwen2.5-0.5B (base)", "continued": "continual pretraining", "lora_merged": "+ LoRA (merged)"}


@dataclass
class EvalConfig:
    stages: list[str] = field(default_factory=lambda: list(STAGE_ORDER))  # evaluated when present in export
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    dtype: str = (
        "float32"  # scores comparable between GPU and CPU runs, logits not rounded to bf16; auto = bf16 on CUDA
    )
    window: int = 1024  # tokens per sliding window for bits per character
    stride: int = 512  # a new window every `stride` tokens (context >= window - stride)
    max_docs_ja: int = 0  # 0 = every held-out Japanese document
    max_docs_en: int = 0  # 0 = every English document
    prompts_ja: str = "jpqwen/resources/prompts/ja_prompts.json"
    prompts_en: str = "jpqwen/resources/prompts/en_prompts.json"
    max_new_tokens: int = 64  # greedy continuation length per prompt
    repetition_penalty: float = 1.0  # 1.0 = plain greedy (reproducible comparison)
    wandb: bool = True  # log results (offline without WANDB_API_KEY)


def eval_models(work: WorkDir, wanted: list[str]) -> dict[str, str]:
    """``{stage: hf_dir}`` from the export record, in STAGE_ORDER, only stages asked for."""
    rec = require_stage(work, "export")
    models = rec.get("outputs", {}).get("models") or {}
    unknown = sorted(set(wanted) - set(STAGE_ORDER))
    if unknown:
        raise InputError(f"eval.stages has unknown stage(s) {unknown}; known: {list(STAGE_ORDER)}")
    chosen = {name: models[name] for name in STAGE_ORDER if name in wanted and name in models}
    if not chosen:
        raise InputError(
            f"the export record ({work.stamps / 'export.json'}) lists no models among {wanted}",
            hint="run `make export` first",
        )
    return chosen


def run(args, cfg: dict, work: WorkDir) -> int:
    from jpqwen.hf.models import dir_signature
    from jpqwen.hf.prompts import lora_template, resolve

    ecfg = section(cfg, "eval", EvalConfig)
    models = eval_models(work, ecfg.stages)
    data = require_stage(work, "data").get("outputs", {})
    ja_path, en_path = data.get("validation_jsonl"), data.get("en_validation_jsonl")
    if not ja_path:
        raise InputError(f"the data record ({work.stamps / 'data.json'}) has no validation_jsonl")
    prompt_files = {"ja": resolve(ecfg.prompts_ja), "en": resolve(ecfg.prompts_en)}
    inputs = {
        "models": {k: [v, dir_signature(v)] for k, v in models.items()},
        "validation_jsonl": [ja_path, _stat(ja_path)],
        "en_validation_jsonl": [en_path, _stat(en_path)] if en_path else None,
        "prompts": {k: [str(p), _stat(p)] for k, p in prompt_files.items()},
        "prompt_template": lora_template(work),
    }
    stage = Stage("eval", work, {"eval": to_jsonable(ecfg), "run": cfg.get("run", {})}, inputs, force=args.force)
    if stage.up_to_date():
        log.info("eval is up to date (%s); --force to redo", stage.stamp_path)
        return 0
    from jpqwen.hf.prompts import load_prompts

    prompts = {lang: load_prompts(p) for lang, p in prompt_files.items()}
    results = evaluate(models, ja_path, en_path, prompts, ecfg, inputs["prompt_template"])
    out = write_outputs(work.eval, results)
    if ecfg.wandb:
        log_to_wandb(work, cfg, results, out)
    metrics = {
        name: {k: r[k]["bits_per_char"] for k in ("ja", "en") if r.get(k)} for name, r in results["stages"].items()
    }
    stage.finish(out, metrics)
    print(render_markdown(results).split("\n## ")[0])
    return 0


def evaluate(
    models: dict[str, str],
    ja_path: str,
    en_path: str | None,
    prompts: dict[str, list],
    ecfg: EvalConfig,
    template: str = "{input}\n{output}",
) -> dict[str, Any]:
    """``prompts``: {lang: [jpqwen.hf.prompts.Prompt]}; instruction prompts are wrapped in ``template``."""
    from jpqwen.hf.bpc import bits_per_char, read_jsonl_texts
    from jpqwen.hf.generation import Decoder
    from jpqwen.hf.models import load_model

    ja_texts = read_jsonl_texts(ja_path, max_docs=ecfg.max_docs_ja or None)
    en_texts = read_jsonl_texts(en_path, max_docs=ecfg.max_docs_en or None) if en_path else []
    results: dict[str, Any] = {
        "settings": {**to_jsonable(ecfg), "prompt_template": template},
        "data": {"validation_jsonl": ja_path, "en_validation_jsonl": en_path},
        "stages": {},
    }
    for name, path in models.items():
        log.info("eval %s: %s", name, path)
        lm = load_model(path, name=name, device=ecfg.device, dtype=ecfg.dtype)
        entry: dict[str, Any] = {
            "model_dir": str(path),
            "parameters": lm.parameters,
            "device": str(lm.device),
            "dtype": str(lm.dtype).removeprefix("torch."),
            "load_seconds": lm.load_seconds,
        }
        entry["ja"] = bits_per_char(lm, ja_texts, ecfg.window, ecfg.stride, progress=f"{name} ja").to_dict()
        if en_texts:
            entry["en"] = bits_per_char(lm, en_texts, ecfg.window, ecfg.stride, progress=f"{name} en").to_dict()
        decoder = Decoder(lm, max_new_tokens=ecfg.max_new_tokens, repetition_penalty=ecfg.repetition_penalty)
        entry["generations"] = {
            lang: [_generation(decoder, p, template) for p in plist] for lang, plist in prompts.items() if plist
        }
        results["stages"][name] = entry
        del decoder, lm
        gc.collect()
    return results


def _generation(decoder, prompt, template: str) -> dict[str, Any]:
    g = decoder.generate(prompt.model_input(template)).to_dict()
    return {**g, "prompt": prompt.text, "category": prompt.category, "model_input": prompt.model_input(template)}


def render_markdown(results: dict[str, Any]) -> str:
    stages = results["stages"]
    base = stages.get("base", {})
    lines = [
        "# jpqwen eval",
        "",
        "Bits per character (lower is better; tokenizer-independent): Japanese on held-out LLM-jp Wikipedia",
        "documents, English on the English sample (forgetting check). Δ is against the base model.",
        "",
        "| stage | ja bpc | Δ ja | en bpc | Δ en | ja chars | en chars | params |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in stages.items():
        ja, en = r.get("ja") or {}, r.get("en") or {}

        def delta(key, cur, _base=base):
            ref = (_base.get(key) or {}).get("bits_per_char")
            return f"{cur['bits_per_char'] - ref:+.4f}" if cur and ref is not None else "–"

        lines.append(
            f"| {STAGE_LABELS.get(name, name)} | {ja.get('bits_per_char', float('nan')):.4f} | {delta('ja', ja)} | "
            + (f"{en['bits_per_char']:.4f} | {delta('en', en)} | " if en else "– | – | ")
            + f"{ja.get('characters', 0):,} | {en.get('characters', 0):,} | {r['parameters'] / 1e6:.1f} M |"
        )
    first = next(iter(stages.values()), {})
    if first.get("ja"):
        lines += [
            "",
            f"Windows of {first['ja']['window']} tokens, stride {first['ja']['stride']}; "
            "each document is preceded by <|endoftext|>.",
        ]
    langs = [lang for lang in ("ja", "en") if any(lang in r.get("generations", {}) for r in stages.values())]
    for lang in langs:
        lines += ["", f"## Greedy generations ({lang})", ""]
        n = max(len(r.get("generations", {}).get(lang, [])) for r in stages.values())
        for i in range(n):
            first = next(r["generations"][lang][i] for r in stages.values() if r.get("generations"))
            lines += [f"### {i + 1}. {first['prompt']} ({first.get('category', 'completion')})", ""]
            for name, r in stages.items():
                g = r.get("generations", {}).get(lang, [])
                if i < len(g):
                    text = g[i]["text"].replace("\n", " ").replace("|", "\\|")
                    lines.append(f"- **{STAGE_LABELS.get(name, name)}**: {text}")
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def render_chart(results: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stages = results["stages"]
    names = list(stages)
    langs = [lang for lang in ("ja", "en") if any(stages[n].get(lang) for n in names)]
    fig, ax = plt.subplots(figsize=(7, 4), dpi=120)
    width = 0.8 / max(len(langs), 1)
    for j, lang in enumerate(langs):
        vals = [(stages[n].get(lang) or {}).get("bits_per_char", 0.0) for n in names]
        xs = [i + (j - (len(langs) - 1) / 2) * width for i in range(len(names))]
        bars = ax.bar(xs, vals, width, label={"ja": "Japanese (held-out)", "en": "English (forgetting)"}[lang])
        ax.bar_label(bars, fmt="%.3f", fontsize=8)
    ax.set_xticks(range(len(names)), [STAGE_LABELS.get(n, n) for n in names], fontsize=8)
    ax.set_ylabel("bits per character (lower is better)")
    ax.set_title("jpqwen: bits per character by stage")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    plt.close(fig)
    return path


def write_outputs(out_dir: Path, results: dict[str, Any]) -> dict[str, str]:
    from jpqwen.io import atomic_path

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "results_json": out_dir / "results.json",
        "results_md": out_dir / "results.md",
        "results_png": out_dir / "results.png",
    }
    write_json_atomic(paths["results_json"], results)
    write_text_atomic(paths["results_md"], render_markdown(results))
    with atomic_path(paths["results_png"], suffix=".png") as tmp:
        render_chart(results, tmp)
    return {k: str(v) for k, v in paths.items()}


def log_to_wandb(work: WorkDir, cfg: dict, results: dict[str, Any], out: dict[str, str]) -> None:
    from jpqwen.monitoring import init_run, wandb_settings

    settings = wandb_settings(work, "eval")
    run_name = f"{(cfg.get('run') or {}).get('name', 'jpqwen')}-eval"
    wb = init_run(settings, run_name, {"eval": results["settings"]}, job_type="eval")
    if wb is None:
        return
    import wandb

    summary = {}
    for name, r in results["stages"].items():
        for lang in ("ja", "en"):
            if r.get(lang):
                summary[f"{name}/{lang}_bpc"] = r[lang]["bits_per_char"]
    wb.log(summary)
    rows = [
        [name, lang, g["prompt"], g["text"]]
        for name, r in results["stages"].items()
        for lang, gens in r.get("generations", {}).items()
        for g in gens
    ]
    wb.log(
        {
            "generations": wandb.Table(columns=["stage", "lang", "prompt", "continuation"], data=rows),
            "bpc_chart": wandb.Image(out["results_png"]),
        }
    )
    wb.summary.update(summary)
    wb.finish()
    log.info("%s", settings.describe())


def _stat(path: str | Path | None) -> list[int] | None:
    if not path or not Path(path).exists():
        return None
    st = Path(path).stat()
    return [st.st_size, st.st_mtime_ns]
