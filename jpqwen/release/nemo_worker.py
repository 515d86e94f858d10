"""NeMo-side operations of `make export`, one per process (GPU machine only).

    python -m jpqwen.release.nemo_worker export   --checkpoint CKPT --out HF_DIR
    python -m jpqwen.release.nemo_worker merge    --checkpoint LORA_CKPT --out MERGED_CKPT
    python -m jpqwen.release.nemo_worker logprobs --checkpoint CKPT --prompts P.json --out REF.pt

Each runs in its own process because NeMo sets up torch.distributed and
Megatron's parallel state once per process; the export stage (which never
imports NeMo itself) runs them one after another.

``logprobs`` is the *reference* of the parity check: it restores the
checkpoint exactly as NeMo's own ``llm.generate`` does
(``nemo.collections.llm.inference.base._setup_trainer_and_restore_model``; for
a LoRA checkpoint that applies the adapters *unmerged*, so the check covers
the merge and the conversion together), then runs Megatron-Core's GPTModel
forward in float32 (or the dtype asked for) and saves the log-softmax of the
logits at every position, the token ids, the tokenizer and the architecture
fields under their Hugging Face names.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _export(checkpoint: str, out: str) -> None:
    from nemo.collections import llm

    from jpqwen.nemo.hf_export import load_connector

    # NeMo 2.3.1's stock HFQwen2Exporter cannot export a tied-embedding checkpoint (pretrain.tie_embeddings,
    # the default): "No matches found for source key: output_layer.weight". jpqwen's tied-aware exporter can.
    llm.export_ckpt(
        path=Path(checkpoint), target="hf", output_path=Path(out), overwrite=True, load_connector=load_connector
    )


def _merge(checkpoint: str, out: str) -> None:
    from nemo.collections import llm

    llm.peft.merge_lora(lora_checkpoint_path=checkpoint, output_path=out)


def _mcore_model(module):
    from megatron.core.models.gpt import GPTModel as MCoreGPTModel

    m = module
    while m is not None and type(m) is not MCoreGPTModel:
        m = getattr(m, "module", None)
    if m is None:
        raise RuntimeError("no Megatron-Core GPTModel inside the restored NeMo model")
    return m


def config_view(cfg) -> dict:
    """The NeMo/Megatron model config under Hugging Face names (see jpqwen.hf.parity.ARCH_FIELDS)."""
    return {
        "hidden_size": cfg.hidden_size,
        "intermediate_size": cfg.ffn_hidden_size,
        "num_hidden_layers": cfg.num_layers,
        "num_attention_heads": cfg.num_attention_heads,
        "num_key_value_heads": cfg.num_query_groups,
        "rope_theta": float(cfg.rotary_base),
        "rms_norm_eps": float(cfg.layernorm_epsilon),
        "vocab_size": getattr(cfg, "vocab_size", None),
        "tie_word_embeddings": bool(cfg.share_embeddings_and_output_weights),
    }


def _logprobs(checkpoint: str, prompts_path: str, out: str, dtype: str) -> None:
    import nemo.lightning as nl
    import torch
    from nemo.collections.llm.inference.base import _setup_trainer_and_restore_model
    from nemo.lightning import io
    from nemo.lightning.ckpt_utils import ckpt_to_context_subdir

    from jpqwen.gpu import has_module
    from jpqwen.hf.parity import save_reference

    path = Path(checkpoint)
    prompts = json.loads(Path(prompts_path).read_text(encoding="utf-8"))
    model = io.load_context(path=ckpt_to_context_subdir(path), subpath="model")
    if not has_module("transformer_engine"):
        # Megatron's local (non-TE) layers: the fused kernels below need apex/TE (see shared/gpu-probe)
        for key in ("masked_softmax_fusion", "apply_rope_fusion", "persist_layer_norm", "gradient_accumulation_fusion"):
            if hasattr(model.config, key):
                setattr(model.config, key, False)
    strategy = nl.MegatronStrategy(
        tensor_model_parallel_size=1,
        pipeline_model_parallel_size=1,
        context_parallel_size=1,
        sequence_parallel=False,
        setup_optimizers=False,
        store_optimizer_states=False,
    )
    trainer = nl.Trainer(
        accelerator="gpu",
        devices=1,
        num_nodes=1,
        strategy=strategy,
        plugins=nl.MegatronMixedPrecision(precision="bf16-mixed", params_dtype=torch.bfloat16, autocast_enabled=False),
    )
    _setup_trainer_and_restore_model(path=path, trainer=trainer, model=model)
    mcore = _mcore_model(model.module if hasattr(model, "module") else model)
    mcore = mcore.to(getattr(torch, dtype)).cuda().eval()
    hf_tokenizer = model.tokenizer.tokenizer  # NeMo's AutoTokenizer wraps the Hugging Face one
    records = mcore_logprob_records(mcore, hf_tokenizer, prompts, getattr(model.config, "vocab_size", None))
    save_reference(out, f"nemo:{path}", dtype, config_view(mcore.config), hf_tokenizer, records)


def mcore_logprob_records(mcore, tokenizer, prompts: list[str], vocab_size: int | None = None) -> list[dict]:
    """Megatron-Core GPTModel forward on each prompt -> ``{"prompt", "token_ids", "logprobs"}`` records.

    Causal attention with an explicit mask (Megatron's convention: True = hidden), positions 0..n-1,
    no special tokens added (the same ids the HF side gets). Runs wherever the model's parameters are.
    Logits beyond ``vocab_size`` (Megatron pads the vocabulary to a multiple of 128) are dropped before
    the softmax, as the exporter drops those rows (TransformFns.prune_padding).
    """
    import torch

    device = next(mcore.parameters()).device
    records = []
    for prompt in prompts:
        ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        x = torch.tensor([ids], device=device)
        pos = torch.arange(len(ids), device=device)[None]
        mask = torch.triu(torch.ones(len(ids), len(ids), dtype=torch.bool, device=device), 1)[None, None]
        with torch.no_grad():
            logits = mcore(input_ids=x, position_ids=pos, attention_mask=mask)  # [batch, seq, padded vocab]
        logits = logits[0, :, :vocab_size] if vocab_size else logits[0]
        records.append({"prompt": prompt, "token_ids": ids, "logprobs": logits.float().log_softmax(-1).cpu()})
    return records


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m jpqwen.release.nemo_worker", description=__doc__.split("\n\n")[0])
    p.add_argument("op", choices=["export", "merge", "logprobs"])
    p.add_argument("--checkpoint", required=True, help="NeMo 2 checkpoint directory (the one with weights/ + context/)")
    p.add_argument("--out", required=True, help="output: HF dir (export), NeMo ckpt dir (merge), .pt file (logprobs)")
    p.add_argument("--prompts", help="logprobs: JSON list of prompts")
    p.add_argument("--dtype", default="float32", help="logprobs: compute dtype of the reference forward")
    args = p.parse_args(argv)

    from jpqwen.gpu import require_gpu

    require_gpu(f"export ({args.op})")
    from jpqwen.nemo.environment import apply_runtime_patches

    # only what this stack lacks (no-ops in the pinned container): RMSNorms on import without TE, LoRA's
    # TE class checks without TE (merge, adapter reference), megatron-core's _write_item on torch >= 2.7 (merge)
    for change in apply_runtime_patches():
        print(f"jpqwen export: runtime patch: {change}", file=sys.stderr)
    if args.op == "export":
        _export(args.checkpoint, args.out)
    elif args.op == "merge":
        _merge(args.checkpoint, args.out)
    else:
        _logprobs(args.checkpoint, args.prompts, args.out, args.dtype)
    return 0


if __name__ == "__main__":
    sys.exit(main())
