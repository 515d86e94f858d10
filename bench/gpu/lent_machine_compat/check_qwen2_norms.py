"""CPU check of fix ``nemo-2.3.1-qwen2-hf-connectors-local-spec-norms`` (no GPU needed).

Builds a tiny Qwen2 in HF with random (not 1.0) RMSNorm weights and the same
model as NeMo builds it without Transformer Engine (local layer spec), then runs
NeMo's own HF connectors' ``convert_state`` both ways and says whether every
norm weight arrived. Run it against the stock NeMo and against a patched copy:

    .venv/bin/python bench/gpu/lent_machine_compat/check_qwen2_norms.py             # stock: import drops norms
    cp -r .venv/lib/python3.11/site-packages/nemo /tmp/nsite/ && \\
      .venv/bin/python bench/gpu/lent_machine_compat/apply.py --site /tmp/nsite && \\
      PYTHONPATH=/tmp/nsite .venv/bin/python bench/gpu/lent_machine_compat/check_qwen2_norms.py   # patched

Exit status 0 when both directions keep every norm weight, 1 otherwise.
"""

from __future__ import annotations

import os
import sys


def main() -> int:
    import torch
    import torch.distributed as dist

    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29533")
    dist.init_process_group("gloo", rank=0, world_size=1)
    from megatron.core import parallel_state

    parallel_state.initialize_model_parallel(1, 1)
    from nemo.collections import llm
    from nemo.collections.llm.gpt.model import base
    from nemo.collections.llm.gpt.model.qwen2 import HFQwen2Exporter, HFQwen2Importer
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from jpqwen.fixtures import TINY

    torch.manual_seed(0)
    hf = Qwen2ForCausalLM(Qwen2Config(**{**TINY, "tie_word_embeddings": False}))
    with torch.no_grad():
        for name, p in hf.named_parameters():
            if "norm" in name:
                p.copy_(0.5 + torch.rand_like(p))  # anything but the init value 1.0
    cfg = llm.Qwen2Config(
        num_layers=TINY["num_hidden_layers"],
        hidden_size=TINY["hidden_size"],
        ffn_hidden_size=TINY["intermediate_size"],
        num_attention_heads=TINY["num_attention_heads"],
        num_query_groups=TINY["num_key_value_heads"],
        vocab_size=TINY["vocab_size"],
        share_embeddings_and_output_weights=False,
        use_cpu_initialization=True,
        params_dtype=torch.float32,
        bf16=False,
    )
    mcore = cfg.configure_model(tokenizer=None)
    print(
        f"HAVE_TE={base.HAVE_TE}; NeMo norm names: {[k for k in mcore.state_dict() if 'layers.0.' in k and 'norm' in k]}"
    )
    ok = True
    mcore = HFQwen2Importer.__new__(HFQwen2Importer).convert_state(hf, mcore)
    for i, layer in enumerate(hf.model.layers):
        got = mcore.decoder.layers[i]
        for hf_norm, nemo_norm in (
            (layer.input_layernorm, got.input_layernorm),
            (layer.post_attention_layernorm, got.pre_mlp_layernorm),
        ):
            if not torch.equal(hf_norm.weight, nemo_norm.weight):
                ok = False
    print(f"import (HF -> NeMo) keeps every layer norm: {ok}")
    back = Qwen2ForCausalLM(Qwen2Config(**{**TINY, "tie_word_embeddings": False}))
    try:
        back = HFQwen2Exporter.__new__(HFQwen2Exporter).convert_state(mcore, back)
        same = all(
            torch.equal(a, b)
            for (n, a), (_, b) in zip(hf.named_parameters(), back.named_parameters(), strict=True)
            if "norm" in n
        )
        print(f"export (NeMo -> HF) returns every norm: {same}")
        ok = ok and same
    except Exception as exc:  # the stock exporter raises here without TE
        print(f"export (NeMo -> HF) failed: {exc!r}"[:300])
        ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
