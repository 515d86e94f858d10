"""The anchor: a plain PyTorch + transformers training loop on Qwen2.5-0.5B's shapes.

What a user might pick instead of NeMo for continual pretraining of a 0.5B model
on one GPU: HF ``Qwen2ForCausalLM`` (tied embeddings, 494 M parameters), SDPA
attention (FlashAttention-2 kernels inside PyTorch), bf16 autocast over fp32
weights, fused AdamW, no activation checkpointing; optionally ``torch.compile``.
Same sequence length, micro batch and global batch as the NeMo run it is set
beside. Tokens are random ids (speed does not depend on their values; loss is
reported only as a sanity check, ~ln(151936) = 11.9 at random init).

    python -m bench.gpu.anchor_train --modes eager,compile --seq-len 2048 \
        --micro-batch 8 --global-batch 16 --steps 30 --out bench/results/gpu_anchor.json

Numbers: median step time over the steps after --warmup, tokens/s, MFU
(bench/gpu/flops.py), peak memory allocated by PyTorch.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import statistics
import time
from pathlib import Path


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bench.gpu.anchor_train",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--modes", default="eager,compile", help="comma list of eager, compile")
    p.add_argument("--seq-len", type=int, default=2048, help="tokens per sequence")
    p.add_argument("--micro-batch", type=int, default=8, help="sequences per forward/backward")
    p.add_argument(
        "--global-batch", type=int, default=16, help="sequences per optimizer step (a multiple of --micro-batch)"
    )
    p.add_argument("--steps", type=int, default=30, help="optimizer steps per mode, warm-up included")
    p.add_argument(
        "--warmup", type=int, default=10, help="steps left out of the timing (compilation, allocator warm-up)"
    )
    p.add_argument("--out", type=Path, required=True, help="JSON file for the results")
    return p


def run_mode(mode: str, args, cfg_dict: dict) -> dict:
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from bench.gpu.flops import mfu, train_flops_per_token

    torch.manual_seed(0)
    config = Qwen2Config(**cfg_dict)
    model = Qwen2ForCausalLM._from_config(config, attn_implementation="sdpa").cuda()
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.1, fused=True)
    forward = torch.compile(model) if mode == "compile" else model
    accum = args.global_batch // args.micro_batch
    gen = torch.Generator(device="cuda").manual_seed(1)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    times, losses = [], []
    t_first = time.perf_counter()
    for _step in range(args.steps):
        t0 = time.perf_counter()
        for _ in range(accum):
            ids = torch.randint(0, 151643, (args.micro_batch, args.seq_len), device="cuda", generator=gen)
            with torch.autocast("cuda", dtype=torch.bfloat16):
                loss = forward(input_ids=ids, labels=ids).loss / accum
            loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
        losses.append(float(loss) * accum)
    timed = times[args.warmup :]
    step_s = statistics.median(timed)
    tokens_per_step = args.global_batch * args.seq_len
    name = torch.cuda.get_device_name(0)
    result = {
        "mode": mode,
        "params": sum(p.numel() for p in model.parameters()),
        "step_s_median": step_s,
        "step_s_min": min(timed),
        "step_s_max": max(timed),
        "tokens_per_s": tokens_per_step / step_s,
        "mfu": mfu(tokens_per_step / step_s, cfg_dict, args.seq_len, name),
        "model_tflops_per_s": tokens_per_step / step_s * train_flops_per_token(cfg_dict, args.seq_len) / 1e12,
        "peak_mem_allocated_gib": torch.cuda.max_memory_allocated() / 2**30,
        "peak_mem_reserved_gib": torch.cuda.max_memory_reserved() / 2**30,
        "first_steps_s": times[: args.warmup],
        "total_s": time.perf_counter() - t_first,
        "loss_first": losses[0],
        "loss_last": losses[-1],
    }
    del model, opt, forward
    torch.cuda.empty_cache()
    return result


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.global_batch % args.micro_batch:
        raise SystemExit("--global-batch must be a multiple of --micro-batch")
    import torch
    import transformers

    from bench.gpu.flops import peak_tflops, train_flops_per_token
    from jpqwen.fixtures import QWEN25_05B

    cfg_dict = dict(QWEN25_05B)
    name = torch.cuda.get_device_name(0)
    out = {
        "what": "anchor: plain PyTorch + transformers, SDPA, bf16 autocast, fused AdamW",
        "date_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "gpu": name,
        "peak_bf16_dense_tflops": peak_tflops(name),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "seq_len": args.seq_len,
        "micro_batch": args.micro_batch,
        "global_batch": args.global_batch,
        "train_flops_per_token": train_flops_per_token(cfg_dict, args.seq_len),
        "command": "python -m bench.gpu.anchor_train " + " ".join(argv or __import__("sys").argv[1:]),
        "runs": {},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for mode in args.modes.split(","):
        try:
            out["runs"][mode] = run_mode(mode, args, cfg_dict)
        except Exception as exc:  # record and go on: the other mode's number is still worth having
            import traceback

            out["runs"][mode] = {"mode": mode, "error": repr(exc), "traceback": traceback.format_exc()[-3000:]}
        args.out.write_text(json.dumps(out, indent=1), encoding="utf-8")
        r = out["runs"][mode]
        if "error" in r:
            print(f"anchor {mode}: FAILED {r['error']}")
        else:
            print(
                f"anchor {mode}: {r['step_s_median']:.3f} s/step, {r['tokens_per_s']:,.0f} tokens/s, "
                f"MFU {r['mfu']:.1%}, peak {r['peak_mem_allocated_gib']:.1f} GiB"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
