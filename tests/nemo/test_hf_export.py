"""Tied embeddings end to end on CPU: HF -> NeMo import layout -> tied restore -> HF export, bit-identical.

Uses NeMo 2.3.1's own HFQwen2Importer.convert_state and Megatron's real GPT
modules (local spec, as on a machine without Transformer Engine), a random tiny
HF Qwen2 with tied embeddings like Qwen2.5-0.5B, and HF's forward pass.
"""

from __future__ import annotations

import pytest
import torch


def _mcore(llm, tie: bool, dtype=torch.float32):
    cfg = llm.Qwen2Config(
        num_layers=2,
        hidden_size=64,
        ffn_hidden_size=128,
        num_attention_heads=4,
        num_query_groups=2,
        share_embeddings_and_output_weights=tie,
        use_cpu_initialization=True,
        perform_initialization=False,
        bf16=dtype == torch.bfloat16,
        params_dtype=dtype,
    )
    return cfg.configure_model(None)


@pytest.fixture
def chain(llm, model_parallel, tiny_qwen_dir):
    from nemo.collections.llm.gpt.model.qwen2 import HFQwen2Importer
    from transformers import AutoModelForCausalLM

    from jpqwen.nemo.environment import apply_runtime_patches

    hf = AutoModelForCausalLM.from_pretrained(tiny_qwen_dir, torch_dtype=torch.float32)
    assert hf.config.tie_word_embeddings
    with torch.no_grad():  # HF initialises RMSNorm weights to 1.0: make them distinct so a dropped norm shows
        for name, p in hf.named_parameters():
            if "norm" in name:
                p.uniform_(0.5, 1.5, generator=torch.Generator().manual_seed(len(name)))
    apply_runtime_patches()  # as `make import` does before converting
    untied = _mcore(llm, tie=False)
    HFQwen2Importer(str(tiny_qwen_dir)).convert_state(hf, untied)  # what `make import` writes
    tied = _mcore(llm, tie=True)
    state = {k: v for k, v in untied.state_dict().items() if k != "output_layer.weight"}
    missing_unexpected = tied.load_state_dict(state, strict=True)  # what the pretrain restore loads
    return hf, untied, tied, missing_unexpected


def test_import_writes_untied_copy_and_tied_model_restores_strictly(chain):
    hf, untied, tied, result = chain
    sd = untied.state_dict()
    assert torch.equal(sd["output_layer.weight"], sd["embedding.word_embeddings.weight"])
    # every RMSNorm weight arrives, also in the local (non-TE) layer spec's separate norm modules
    for i, layer in enumerate(hf.model.layers):
        assert torch.equal(sd[f"decoder.layers.{i}.input_layernorm.weight"], layer.input_layernorm.weight)
        assert torch.equal(sd[f"decoder.layers.{i}.pre_mlp_layernorm.weight"], layer.post_attention_layernorm.weight)
    assert torch.equal(sd["decoder.final_layernorm.weight"], hf.model.norm.weight)
    assert not result.missing_keys and not result.unexpected_keys
    assert "output_layer.weight" not in tied.state_dict()


def test_tied_export_reproduces_the_hf_model(chain, tiny_qwen_dir):
    from transformers import AutoModelForCausalLM, Qwen2Config

    from jpqwen.nemo.hf_export import is_tied, tied_aware_exporter

    hf, _, tied, _ = chain
    assert is_tied(tied)
    target = AutoModelForCausalLM.from_config(
        Qwen2Config(**{**hf.config.to_dict(), "tie_word_embeddings": False}), torch_dtype=torch.float32
    )
    out = tied_aware_exporter(tiny_qwen_dir).convert_state(tied, target)
    assert out.config.tie_word_embeddings and out.lm_head.weight is out.model.embed_tokens.weight
    a, b = hf.state_dict(), out.state_dict()
    assert set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)
    ids = torch.randint(0, 151_000, (2, 12), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        # same weights; kernels may differ in summation order (split tensors are views with other strides)
        torch.testing.assert_close(hf(ids).logits, out(ids).logits, rtol=1e-5, atol=1e-5)
    assert sum(p.numel() for p in out.parameters()) == sum(p.numel() for p in hf.parameters())


def test_bf16_export_of_a_local_spec_model_with_fp32_norms(llm, chain, tiny_qwen_dir):
    """A bf16 model without TE keeps its RMSNorms in fp32 (Megatron's local spec): the export must still work.

    Found on the lent GPU: the HF target is built in bf16 and NeMo's apply_transforms asserted
    "dtype mismatch between source and target state dicts" on the 2L+1 fp32 norm weights.
    """
    from transformers import AutoModelForCausalLM, Qwen2Config

    from jpqwen.nemo.hf_export import tied_aware_exporter

    hf, _, tied, _ = chain
    bf16 = _mcore(llm, tie=True, dtype=torch.bfloat16)
    bf16.load_state_dict(tied.state_dict(), strict=True)
    dtypes = {n: p.dtype for n, p in bf16.named_parameters()}
    assert dtypes["decoder.layers.0.input_layernorm.weight"] == torch.float32  # what training on the lent GPU had
    assert dtypes["decoder.layers.0.mlp.linear_fc1.weight"] == torch.bfloat16
    target = AutoModelForCausalLM.from_config(
        Qwen2Config(**{**hf.config.to_dict(), "tie_word_embeddings": False}), torch_dtype=torch.bfloat16
    )
    out = tied_aware_exporter(tiny_qwen_dir).convert_state(bf16, target)
    assert {p.dtype for p in out.parameters()} == {torch.bfloat16}
    a, b = hf.state_dict(), out.state_dict()
    assert set(a) == set(b)
    for k in a:  # every tensor arrives, rounded to bf16 once
        assert torch.equal(a[k].to(torch.bfloat16), b[k]), k


def test_nemo_stock_exporter_cannot_export_the_tied_model(chain, tiny_qwen_dir):
    """Why jpqwen ships its exporter: NeMo 2.3.1's HFQwen2Exporter fails on this model."""
    from nemo.collections.llm.gpt.model.qwen2 import HFQwen2Exporter
    from transformers import AutoModelForCausalLM, Qwen2Config

    hf, _, tied, _ = chain
    target = AutoModelForCausalLM.from_config(Qwen2Config(**{**hf.config.to_dict(), "tie_word_embeddings": False}))
    with pytest.raises((ValueError, IndexError, RuntimeError)):
        HFQwen2Exporter(str(tiny_qwen_dir)).convert_state(tied, target)


def test_untied_export_keeps_the_separate_head(chain, tiny_qwen_dir):
    from transformers import AutoModelForCausalLM, Qwen2Config

    from jpqwen.nemo.hf_export import tied_aware_exporter

    hf, untied, _, _ = chain
    target = AutoModelForCausalLM.from_config(
        Qwen2Config(**{**hf.config.to_dict(), "tie_word_embeddings": False}), torch_dtype=torch.float32
    )
    out = tied_aware_exporter(tiny_qwen_dir).convert_state(untied, target)
    assert not out.config.tie_word_embeddings and out.lm_head.weight is not out.model.embed_tokens.weight
    assert torch.equal(out.lm_head.weight, hf.lm_head.weight)


def test_lora_attaches_adapters_to_local_spec_layers_without_te(llm, model_parallel):
    """NeMo 2.3.1's LoRA trips over Transformer Engine placeholders without TE; the runtime patch fixes it."""
    from nemo.collections.llm import fn
    from nemo.collections.llm.peft.lora import LoRALinear

    from jpqwen.nemo.environment import apply_runtime_patches

    assert any("LoRA" in p for p in apply_runtime_patches())  # this venv has no Transformer Engine
    model = _mcore(llm, tie=True)
    before = sum(p.numel() for p in model.parameters())
    model = fn.walk(model, llm.peft.LoRA(dim=8, alpha=16).transform)
    layer = model.decoder.layers[0]
    assert all(
        isinstance(m, LoRALinear)
        for m in (
            layer.self_attention.linear_qkv,
            layer.self_attention.linear_proj,
            layer.mlp.linear_fc1,
            layer.mlp.linear_fc2,
        )
    )
    # rank 8 on qkv (64->128), proj (64->64), fc1 (64->256), fc2 (128->64), 2 layers
    per_layer = 8 * (64 + 128) + 8 * (64 + 64) + 8 * (64 + 256) + 8 * (128 + 64)
    assert sum(p.numel() for p in model.parameters()) - before == 2 * per_layer
    # what a LoRA checkpoint saves: the adapter weights appear in Megatron's sharded state dict
    adapter_weights = [k for k in model.sharded_state_dict() if ".adapter." in k and k.endswith(".weight")]
    assert len(adapter_weights) == 2 * 4 * 2  # layers x target modules x (linear_in, linear_out)
