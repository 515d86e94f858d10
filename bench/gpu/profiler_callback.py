"""A Lightning callback that profiles a window of NeMo training steps with torch.profiler.

Added to a recipe by bench/gpu/profile_pretrain.py (never by the project's own
stages). It times every step (CUDA-synchronised), profiles steps
[start, start + steps) with CPU + CUDA activities, and writes one JSON with:
the step times, peak memory, the top GPU kernels by total time, and those
kernels grouped into categories (matmul, attention core, softmax, elementwise,
norm, cross-entropy, optimizer, copies/communication) so that the milliseconds
of one step can be read off without a trace viewer.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import lightning.pytorch as pl

# (category, regex on the kernel name), first match wins; order matters
CATEGORIES = [
    ("flash/fused attention", r"flash|fmha|sdpa|attention|cudnn.*attn"),
    ("matmul (GEMM)", r"gemm|cutlass|sm90_xmma|xmma|cublas|nvjet|wgmma|matmul|\bmm\b|bmm"),
    ("softmax", r"softmax"),
    ("cross-entropy / log-softmax", r"nll|cross_entropy|log_softmax|logsumexp"),
    ("norm (RMSNorm)", r"norm|rsqrt|moments"),
    ("optimizer (Adam)", r"adam|multi_tensor|foreach"),
    ("reductions", r"reduce|sum_kernel|max_kernel|mean"),
    ("copies / casts / layout", r"copy|memcpy|memset|cat|transpose|permute|contiguous|index|gather|scatter|fill"),
    ("communication (NCCL)", r"nccl"),
    (
        "elementwise (activations, masks, rotary, dropout)",
        r"elementwise|vectorized|unrolled|silu|mul|add|where|masked|dropout|triu|rotary",
    ),
]


def categorize(name: str) -> str:
    low = name.lower()
    for cat, pattern in CATEGORIES:
        if re.search(pattern, low):
            return cat
    return "other"


class TorchProfilerCallback(pl.Callback):
    def __init__(self, out: str, start: int = 3, steps: int = 3, top: int = 30, tokens_per_step: int | None = None):
        super().__init__()
        self.out = Path(out)
        self.start, self.steps, self.top = start, steps, top
        self.tokens_per_step = tokens_per_step
        self.step_times: list[float] = []
        self._t0 = None
        self._prof = None
        self._done = False

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        import torch

        torch.cuda.synchronize()
        self._t0 = time.perf_counter()
        if trainer.global_step == self.start and self._prof is None and not self._done:
            self._prof = torch.profiler.profile(
                activities=[torch.profiler.ProfilerActivity.CPU, torch.profiler.ProfilerActivity.CUDA],
                record_shapes=False,
            )
            self._prof.__enter__()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        import torch

        torch.cuda.synchronize()
        self.step_times.append(time.perf_counter() - self._t0)
        if self._prof is not None and trainer.global_step >= self.start + self.steps:
            self._prof.__exit__(None, None, None)
            self._write(self._prof)
            self._prof, self._done = None, True  # one window only

    def _write(self, prof) -> None:
        import torch
        from torch.autograd import DeviceType

        # kernel events only: an aten op's row also carries the GPU time of the kernels it launched
        cuda = []
        for e in prof.key_averages():
            if getattr(e, "device_type", None) != DeviceType.CUDA:
                continue
            t = getattr(e, "self_device_time_total", None)
            if t is None:
                t = getattr(e, "self_cuda_time_total", 0)
            if t and t > 0:
                cuda.append((e.key, t / 1e3, e.count))  # ms over the profiled steps
        cuda.sort(key=lambda x: -x[1])
        total_ms = sum(t for _, t, _ in cuda)
        per_step = max(1, self.steps)
        cats: dict[str, float] = {}
        for name, t, _ in cuda:
            cats[categorize(name)] = cats.get(categorize(name), 0.0) + t
        timed = self.step_times[1:] if len(self.step_times) > 1 else self.step_times
        result = {
            "profiled_steps": self.steps,
            "step_times_s": self.step_times,
            "gpu_kernel_ms_per_step": total_ms / per_step,
            "kernel_ms_per_step": total_ms / per_step,
            "categories_ms_per_step": {k: v / per_step for k, v in sorted(cats.items(), key=lambda kv: -kv[1])},
            "top_kernels": [
                {
                    "name": n[:160],
                    "ms_per_step": t / per_step,
                    "calls_per_step": c / per_step,
                    "category": categorize(n),
                }
                for n, t, c in cuda[: self.top]
            ],
            "peak_mem_allocated_gib": torch.cuda.max_memory_allocated() / 2**30,
            "peak_mem_reserved_gib": torch.cuda.max_memory_reserved() / 2**30,
            "median_step_s_before_profile": sorted(timed[: self.start])[len(timed[: self.start]) // 2]
            if timed[: self.start]
            else None,
            "tokens_per_step": self.tokens_per_step,
        }
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.out.write_text(json.dumps(result, indent=1), encoding="utf-8")
        print(f"profile: {total_ms / per_step:.1f} ms of GPU kernels per step -> {self.out}")
        for k, v in result["categories_ms_per_step"].items():
            print(f"  {k:<52} {v:8.1f} ms/step")
