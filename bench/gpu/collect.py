"""Turn what a lent-GPU call brought back into bench/results/gpu_<tag>.json.

    python -m bench.gpu.collect /work/.device/<n> [/work/.device/<n+1> ...] --tag run3

Several call folders (consecutive calls that continued one machine's chain) merge in
the order given: their steps are concatenated (each tagged with its call), logs and
JSON files of a later call win over an earlier one's.

Reads the call's $OUT: chain.json (per step: rc, seconds, peak GPU memory by
nvidia-smi, command), versions.json, anchor_*.json, profile.json,
demo_bench.json and logs.tar.gz (stage logs: NeMo's per-step
``train_step_timing in s`` and ``reduced_train_loss``, trainable parameters).
Step times are medians over the steps after the first ``--skip`` (start-up,
allocator and data-loader warm-up).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import tarfile
from pathlib import Path

from bench.gpu.flops import mfu, train_flops_per_token
from jpqwen.fixtures import QWEN25_05B

STEP_RE = re.compile(r"global_step: (\d+) \| reduced_train_loss: ([0-9.]+) \| train_step_timing in s: ([0-9.]+)")
TRAINABLE_RE = re.compile(r"number of trainable parameters: (\d+)")
PARAMS_RE = re.compile(r"number of parameters on \(tensor, pipeline\) model parallel rank \(0 ?, ?0\): (\d+)")
BATCH_RE = re.compile(r"global_batch_size: (\d+)")


def read_logs(tar_path: Path) -> dict[str, str]:
    logs = {}
    if not tar_path.is_file():
        return logs
    with tarfile.open(tar_path) as tar:
        for m in tar.getmembers():
            if m.isfile() and m.name.startswith("bench-logs/") and m.name.endswith(".log"):
                logs[Path(m.name).stem] = tar.extractfile(m).read().decode("utf-8", "replace")
    return logs


def training_numbers(log: str, seq_len: int, gpu: str, skip: int = 3) -> dict | None:
    steps = [(int(a), float(b), float(c)) for a, b, c in STEP_RE.findall(log)]
    if not steps:
        return None
    gbs = [int(x) for x in BATCH_RE.findall(log)]
    gbs = gbs[-1] if gbs else None
    timed = [t for s, _, t in steps if s >= skip] or [t for _, _, t in steps]
    step_s = statistics.median(timed)
    out = {
        "steps_logged": len(steps),
        "step_s_median": step_s,
        "step_s_first": steps[0][2],
        "loss_first": steps[0][1],
        "loss_last": steps[-1][1],
        "global_batch_size": gbs,
    }
    if gbs:
        tps = gbs * seq_len / step_s
        out.update(tokens_per_s=tps, mfu=mfu(tps, QWEN25_05B, seq_len, gpu))
    m = PARAMS_RE.findall(log)
    if m:
        out["parameters"] = int(m[-1])
    m = TRAINABLE_RE.findall(log)
    if m:
        out["trainable_parameters"] = int(m[-1])
    return out


def lora_tokens_per_sample(dataset: Path, template: str = "{input}\n{output}") -> float:
    """Mean tokens of one LoRA training sample (prompt template + output + EOS), real Qwen2.5 tokenizer.

    NeMo's FineTuningDataModule pads a micro batch to its longest sample, not to seq_length, so
    global_batch x seq_length would overstate LoRA's tokens/s ~20x on short instruction pairs.
    """
    import tempfile

    from transformers import AutoTokenizer

    from jpqwen.fixtures import write_qwen25_tokenizer
    from jpqwen.nemo.lora_data import read_pairs

    with tempfile.TemporaryDirectory() as tmp:
        tok = AutoTokenizer.from_pretrained(write_qwen25_tokenizer(tmp))
        pairs = read_pairs(dataset)
        lengths = [len(tok(template.format(input=p["input"], output=p["output"]))["input_ids"]) + 1 for p in pairs]
    return sum(lengths) / len(lengths)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("call_dirs", type=Path, nargs="+", help="the files_at folder(s) of device call(s), in order")
    p.add_argument("--tag", required=True, help="names the result file bench/results/gpu_<tag>.json")
    p.add_argument("--seq-len", type=int, default=2048)
    p.add_argument("--skip", type=int, default=3, help="first steps left out of the step-time median")
    p.add_argument("--results", type=Path, default=Path("bench/results"))
    p.add_argument(
        "--lora-dataset",
        type=Path,
        default=Path("jpqwen/resources/sample/lora/ja_instructions.jsonl"),
        help="the LoRA training pairs the chain used (for real tokens per step)",
    )
    p.add_argument("--versions", type=Path, help="versions.json of another call on the same kind of machine")
    args = p.parse_args()
    dirs = args.call_dirs

    def load(name):
        found = [d / name for d in dirs if (d / name).is_file()]
        return json.loads(found[-1].read_text(encoding="utf-8")) if found else None

    versions = load("versions.json")
    if versions is None and args.versions:
        versions = {**json.loads(args.versions.read_text(encoding="utf-8")), "from": str(args.versions)}
    chain, logs = [], {}
    for d in dirs:
        f = d / "chain.json"
        for step in json.loads(f.read_text(encoding="utf-8")) if f.is_file() else []:
            chain.append({**step, "call": d.name} if len(dirs) > 1 else step)
        logs.update(read_logs(d / "logs.tar.gz"))
    d = dirs[-1]
    gpu = (versions or {}).get("gpu") or ""
    if not gpu:
        for f in sorted(f for e in dirs for f in e.glob("anchor_*.json")):
            gpu = json.loads(f.read_text())["gpu"]
    result = {
        "tag": args.tag,
        "gpu": gpu,
        "versions": versions,
        "train_flops_per_token_seq2048": train_flops_per_token(QWEN25_05B, args.seq_len),
        "steps": chain,
        "training": {},
        "anchor": {f.stem: json.loads(f.read_text()) for e in dirs for f in sorted(e.glob("anchor_*.json"))},
        "profile": load("profile.json"),
        "demo_bench": load("demo_bench.json"),
        "smoke": load("smoke.json"),
    }
    for step in chain:
        name = step["step"]
        if name in logs:
            nums = training_numbers(logs[name], args.seq_len, gpu, args.skip)
            if nums:
                nums["peak_gpu_mem_mib_nvidia_smi"] = step.get("peak_gpu_mem_mib")
                result["training"][name] = nums
    lora = result["training"].get("lora")
    if lora and args.lora_dataset.is_file():
        per = lora_tokens_per_sample(args.lora_dataset)
        lora["padded_tokens_per_s_if_seq_length"] = lora.pop("tokens_per_s", None)
        lora.pop("mfu", None)  # 6N FLOPs/token does not hold for frozen weights, and samples are short
        lora["tokens_per_sample_mean"] = round(per, 1)
        lora["tokens_per_s"] = lora["global_batch_size"] * per / lora["step_s_median"]
        lora["samples_per_s"] = lora["global_batch_size"] / lora["step_s_median"]
    prof = result["profile"]
    if prof and "kernel_ms_per_step" not in prof:
        # Profiles taken before the callback kept kernels only (run h200_run) listed both the aten:: ops
        # (with the GPU time of the kernels they launched) and the kernels: their category sums count
        # every kernel twice. Keep the kernel rows of the top list and halve the total.
        rows, seen = [], set()
        for k in prof.get("top_kernels", []):
            if k["name"].startswith("aten::") or k["name"] in seen:
                continue
            seen.add(k["name"])
            rows.append(k)
        prof["kernel_rows_of_top_list"] = rows
        prof["aten_op_rows_of_top_list"] = [k for k in prof.get("top_kernels", []) if k["name"].startswith("aten::")]
        prof["kernel_ms_per_step_estimate"] = prof["gpu_kernel_ms_per_step"] / 2
        prof["note"] = (
            "categories_ms_per_step and gpu_kernel_ms_per_step count each kernel twice (once as the aten op "
            "that launched it); kernel_ms_per_step_estimate is half of the total. Fixed in profiler_callback.py."
        )
    for a in result["anchor"].values():  # first-step lists are noise in the summary
        for r in a.get("runs", {}).values():
            r.pop("first_steps_s", None)
    out = args.results / f"gpu_{args.tag}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1, ensure_ascii=False), encoding="utf-8")
    print(f"collect: {out}")
    for name, nums in result["training"].items():
        tps = nums.get("tokens_per_s")
        print(
            f"  {name:<12} {nums['step_s_median']:.3f} s/step"
            + (f", {tps:,.0f} tokens/s" if tps else "")
            + (f", MFU {nums['mfu']:.1%}" if nums.get("mfu") else "")
            + f", peak {nums['peak_gpu_mem_mib_nvidia_smi']} MiB"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
