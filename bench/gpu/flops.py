"""Model FLOPs per token and MFU for Qwen2-family decoder training.

Formula (training = forward + backward = 3x forward; a multiply-add = 2 FLOPs;
attention scores counted as if not causal, the usual convention):

    FLOPs/token = 6 * N_matmul + 12 * L * h * s

    N_matmul = L * (2*h*h                 # q and o projections
                    + 2*h*(g*d)            # k and v projections (g KV heads of size d)
                    + 3*h*f)               # SwiGLU MLP (gate, up, down)
               + h * V                     # LM head (computed whether or not tied)

h hidden size, L layers, f FFN size, g KV heads, d head size, V vocab, s sequence
length. Biases and norms are left out (< 0.1 % of the FLOPs). This is term for
term NeMo's own llama-family formula (nemo/utils/flops_formulas.py, `llama3`:
L*h^2*(12 + 12g/a + 18f/h + 12s/h + 6V/(Lh)) per token), so NeMo's
FLOPsMeasurementCallback would report the same model FLOPs.

Qwen2.5-0.5B at s = 2048: N_matmul = 357.8 M + 136.1 M, 3.49 GFLOP/token.

MFU = tokens/s * FLOPs/token / peak. Peak = the datasheet dense bf16 rate,
989.4 TFLOP/s for H100 SXM and H200 (same compute); a large bf16 matmul reached
~790 TFLOP/s on these lent machines (device KINDS.md), so 80 % MFU is the
practical ceiling there.
"""

from __future__ import annotations

from typing import Any

# Dense bf16 tensor-core peak, TFLOP/s, by GPU name substring (NVIDIA datasheets).
BF16_DENSE_PEAK_TFLOPS = {"H200": 989.4, "H100": 989.4, "A100": 312.0}


def matmul_params(cfg: dict[str, Any]) -> int:
    """Weights that take part in a matmul per token (HF Qwen2 config keys), LM head included."""
    h, f, L, V = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"], cfg["vocab_size"]
    d = cfg.get("head_dim") or h // cfg["num_attention_heads"]
    kv = cfg["num_key_value_heads"] * d
    return L * (2 * h * h + 2 * h * kv + 3 * h * f) + h * V


def train_flops_per_token(cfg: dict[str, Any], seq_len: int) -> float:
    """Model FLOPs of one training token (forward + backward) at sequence length ``seq_len``."""
    return 6.0 * matmul_params(cfg) + 12.0 * cfg["num_hidden_layers"] * cfg["hidden_size"] * seq_len


def peak_tflops(gpu_name: str) -> float | None:
    for key, value in BF16_DENSE_PEAK_TFLOPS.items():
        if key in gpu_name:
            return value
    return None


def mfu(tokens_per_s: float, cfg: dict[str, Any], seq_len: int, gpu_name: str) -> float | None:
    peak = peak_tflops(gpu_name)
    if peak is None:
        return None
    return tokens_per_s * train_flops_per_token(cfg, seq_len) / (peak * 1e12)


def _check_against_hf() -> None:
    """Cross-check matmul_params against the real HF Qwen2 module tree (meta device, no memory)."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from jpqwen.fixtures import QWEN25_05B

    with torch.device("meta"):
        model = Qwen2ForCausalLM(Qwen2Config(**QWEN25_05B))
    linear = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))
    assert linear == matmul_params(QWEN25_05B), (linear, matmul_params(QWEN25_05B))
    print(f"matmul params {linear / 1e6:.1f} M (HF module tree agrees)")
    print(f"train FLOPs/token at seq 2048: {train_flops_per_token(QWEN25_05B, 2048) / 1e9:.3f} G")


if __name__ == "__main__":
    _check_against_hf()
