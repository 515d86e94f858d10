"""The parity check with a real Megatron-Core reference, on CPU.

The export stage's reference is NeMo's model run through Megatron-Core's
GPTModel forward (:func:`jpqwen.release.nemo_worker.mcore_logprob_records`).
Here that forward runs on CPU on a GPTModel built by NeMo 2.3.1's own
Qwen2 config and filled by NeMo's own HF importer (tied embeddings, as
jpqwen trains), then jpqwen's tied-aware exporter converts it back to HF and
the parity check compares the two. Two shims let Megatron-Core 0.12 run on a
CPU in eval mode and change no arithmetic: RoPE's frequency buffer is moved
to ``torch.cuda.current_device()`` unconditionally (answered with "cpu"), and
dropout's CUDA RNG fork (dropout is the identity in eval mode) is a no-op.
"""

from __future__ import annotations

import contextlib
import socket

import pytest
import torch

from jpqwen.hf.parity import PrecomputedLogProbs, save_reference, verify_export
from jpqwen.release.export import DEFAULT_PARITY_PROMPTS, finalize_hf_dir

PROMPTS = DEFAULT_PARITY_PROMPTS[:3]


@pytest.fixture(scope="module")
def megatron_cpu():
    import torch.distributed as dist

    started = not dist.is_initialized()
    if started:  # a one-rank gloo group on a free port (other test processes may run beside this one)
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)
    from megatron.core import parallel_state, tensor_parallel

    parallel_state.initialize_model_parallel(1, 1)
    mp = pytest.MonkeyPatch()
    mp.setattr(torch.cuda, "current_device", lambda: "cpu")
    mp.setattr(tensor_parallel.get_cuda_rng_tracker(), "fork", lambda *a, **k: contextlib.nullcontext())
    from nemo.collections import llm

    yield llm
    mp.undo()
    parallel_state.destroy_model_parallel()
    if started:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A tiny Qwen2 whose RMSNorm weights are not all 1.0 (HF's init), so a dropped norm shows."""
    from transformers import AutoModelForCausalLM

    from jpqwen.fixtures import make_random_qwen2

    path = make_random_qwen2(tmp_path_factory.mktemp("nemo_ref_src"), seed=7, initializer_range=0.1)
    model = AutoModelForCausalLM.from_pretrained(path)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.uniform_(0.5, 1.5, generator=torch.Generator().manual_seed(len(name)))
    model.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def tied_mcore(megatron_cpu, source):
    """What `make pretrain` trains: NeMo's Qwen2 GPTModel with tied embeddings, weights from the HF model."""
    from nemo.collections.llm.gpt.model.qwen2 import HFQwen2Importer
    from transformers import AutoModelForCausalLM

    llm = megatron_cpu
    hf = AutoModelForCausalLM.from_pretrained(source, torch_dtype=torch.float32)
    c = hf.config

    def build(tie: bool):
        cfg = llm.Qwen2Config(
            num_layers=c.num_hidden_layers,
            hidden_size=c.hidden_size,
            ffn_hidden_size=c.intermediate_size,
            num_attention_heads=c.num_attention_heads,
            num_query_groups=c.num_key_value_heads,
            rotary_base=c.rope_theta,
            share_embeddings_and_output_weights=tie,
            use_cpu_initialization=True,
            perform_initialization=False,
            bf16=False,
            params_dtype=torch.float32,
            # the local (non-Transformer-Engine) layers' fused kernels need CUDA
            masked_softmax_fusion=False,
            apply_rope_fusion=False,
            persist_layer_norm=False,
            gradient_accumulation_fusion=False,
            bias_activation_fusion=False,
            bias_dropout_fusion=False,
        )
        return cfg, cfg.configure_model(None)

    from jpqwen.nemo.environment import apply_runtime_patches

    apply_runtime_patches()  # as `make import` does: without TE, NeMo 2.3.1's importer would drop the norms
    _, untied = build(False)
    HFQwen2Importer(str(source)).convert_state(hf, untied)  # NeMo's importer, as `make import`
    cfg, tied = build(True)
    state = {k: v for k, v in untied.state_dict().items() if k != "output_layer.weight"}
    tied.load_state_dict(state, strict=True)  # the tied restore of `make pretrain`
    return cfg, tied.eval()


@pytest.fixture(scope="module")
def nemo_reference(tied_mcore, source, tmp_path_factory):
    from transformers import AutoTokenizer

    from jpqwen.release.nemo_worker import config_view, mcore_logprob_records

    cfg, mcore = tied_mcore
    tok = AutoTokenizer.from_pretrained(source)
    records = mcore_logprob_records(mcore, tok, PROMPTS, cfg.vocab_size)
    path = tmp_path_factory.mktemp("nemo_ref") / "continued.reference.pt"
    save_reference(path, "nemo:tiny-tied", "float32", config_view(mcore.config), tok, records)
    return PrecomputedLogProbs(path)


def export_to_hf(tied_mcore, source, out, corrupt: bool = False):
    """jpqwen's tied-aware exporter (the one `make export` runs) from the Megatron model to a HF directory."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, Qwen2Config

    from jpqwen.nemo.hf_export import tied_aware_exporter

    _, mcore = tied_mcore
    hf_cfg = AutoModelForCausalLM.from_pretrained(source).config.to_dict()
    target = AutoModelForCausalLM.from_config(Qwen2Config(**{**hf_cfg, "tie_word_embeddings": False}))
    model = tied_aware_exporter(source).convert_state(mcore, target)
    if corrupt:
        with torch.no_grad():
            model.model.layers[1].self_attn.o_proj.weight.mul_(0.5)
    state = {k: v for k, v in model.state_dict().items() if k != "lm_head.weight"}
    model.save_pretrained(out, state_dict=state)
    AutoTokenizer.from_pretrained(source).save_pretrained(out)
    finalize_hf_dir(out, source)
    return out


def test_megatron_reference_matches_the_hf_export(nemo_reference, tied_mcore, source, tmp_path):
    assert nemo_reference.config_view()["tie_word_embeddings"] is True
    cand = export_to_hf(tied_mcore, source, tmp_path / "continued")
    report = verify_export(nemo_reference, cand, PROMPTS, device="cpu")
    assert report.passed, report.summary()
    assert report.max_abs_diff < 1e-4  # float32 Megatron vs float32 HF: only summation order differs
    assert all(c.ok for c in report.consistency)
    # the original HF model agrees with NeMo's forward too (import -> tied restore preserved it)
    assert verify_export(nemo_reference, source, PROMPTS, device="cpu").max_abs_diff < 1e-4


def test_megatron_reference_catches_a_bad_export(nemo_reference, tied_mcore, source, tmp_path):
    cand = export_to_hf(tied_mcore, source, tmp_path / "bad", corrupt=True)
    report = verify_export(nemo_reference, cand, PROMPTS, device="cpu")
    assert not report.passed and report.max_abs_diff > 10 * report.atol
    assert "worst: prompt" in report.summary()


def test_import_check_catches_dropped_norms(tied_mcore, source, tmp_path):
    """`export.check_import`: NeMo 2.3.1's importer without TE leaves every RMSNorm at 1.0 (found on the
    lent GPU). A Megatron model in that state, as the reference against the base HF model, fails."""
    import copy

    from transformers import AutoTokenizer

    from jpqwen.release.nemo_worker import config_view, mcore_logprob_records

    cfg, mcore = tied_mcore
    broken = copy.deepcopy(mcore)
    with torch.no_grad():
        for layer in broken.decoder.layers:
            layer.input_layernorm.weight.fill_(1.0)
            layer.pre_mlp_layernorm.weight.fill_(1.0)
    tok = AutoTokenizer.from_pretrained(source)
    records = mcore_logprob_records(broken, tok, PROMPTS, cfg.vocab_size)
    path = save_reference(
        tmp_path / "base.reference.pt", "nemo:dropped-norms", "float32", config_view(broken.config), tok, records
    )
    report = verify_export(PrecomputedLogProbs(path), source, PROMPTS, device="cpu")
    assert not report.passed and report.max_abs_diff > 10 * report.atol
