"""One recipe, any environment: keep every fusion that can run here, turn off the rest.

In the pinned container (Transformer Engine + apex) nothing changes. On a GPU
machine without them (the lent GPU: torch 2.11, megatron-core 0.12.1 built from
source) NeMo 2.3.1 needed the changes below to train (see
``../shared/gpu-probe/README.md``). Each change is recorded with its reason and
printed in the plan, so a run never differs from the container silently.

Nothing here imports NeMo; detection uses ``importlib`` only.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

from jpqwen.gpu import has_module


@dataclass(frozen=True)
class Stack:
    """Which optional kernel packages this Python can import."""

    transformer_engine: bool
    apex: bool
    # Megatron's fused softmax kernels (built by apex with --cuda_ext)
    scaled_masked_softmax: bool
    # apex's fused weight-gradient GEMM (gradient_accumulation_fusion)
    fused_weight_gradient: bool
    # apex's rotary-embedding kernel (used when TE's is absent)
    apex_rope: bool
    # apex's persistent LayerNorm kernel
    apex_fast_layer_norm: bool

    @classmethod
    def detect(cls) -> Stack:
        apex = has_module("apex")
        return cls(
            transformer_engine=has_module("transformer_engine"),
            apex=apex,
            scaled_masked_softmax=has_module("scaled_masked_softmax_cuda"),
            fused_weight_gradient=has_module("fused_weight_gradient_mlp_cuda"),
            apex_rope=apex and has_module("apex.transformer.functional"),
            apex_fast_layer_norm=apex and has_module("apex.contrib.layer_norm"),
        )

    def describe(self) -> str:
        te = "Transformer Engine" if self.transformer_engine else "no Transformer Engine"
        ap = "apex" if self.apex else "no apex"
        return f"{te}, {ap}"


@dataclass(frozen=True)
class Change:
    """One setting changed from the recipe's value because of this environment."""

    target: str  # dotted path inside the recipe, e.g. "model.config.masked_softmax_fusion"
    value: object
    reason: str

    def describe(self) -> str:
        return f"{self.target} = {self.value!r}: {self.reason}"


def model_changes(stack: Stack) -> list[Change]:
    """Fusion flags on the model config that this stack cannot run."""
    changes = []
    # With TE the attention is TEDotProductAttention and never reaches Megatron's FusedScaleMaskSoftmax.
    if not stack.transformer_engine and not stack.scaled_masked_softmax:
        changes.append(
            Change(
                "model.config.masked_softmax_fusion",
                False,
                "no Transformer Engine and no scaled_masked_softmax_cuda (apex --cuda_ext): "
                "the local attention would fail to import the fused softmax kernel",
            )
        )
    if not stack.transformer_engine and not stack.apex_rope:
        changes.append(
            Change(
                "model.config.apply_rope_fusion",
                False,
                "no fused rotary-embedding kernel (needs Transformer Engine or apex.transformer.functional)",
            )
        )
    if not stack.fused_weight_gradient:
        changes.append(
            Change(
                "model.config.gradient_accumulation_fusion",
                False,
                "no fused_weight_gradient_mlp_cuda (apex --cuda_ext) for the fused weight-gradient GEMM",
            )
        )
    if not stack.transformer_engine and not stack.apex_fast_layer_norm:
        changes.append(
            Change(
                "model.config.persist_layer_norm",
                False,
                "no persistent LayerNorm kernel (needs Transformer Engine or apex.contrib.layer_norm)",
            )
        )
    return changes


def optim_changes(stack: Stack) -> list[Change]:
    if stack.transformer_engine:
        return []
    return [
        Change(
            "optim.config.use_distributed_optimizer",
            False,
            "megatron-core 0.12's distributed optimizer takes an FP8 code path that raises "
            "'Invalid Transformer Engine version for FP8 distributed optimizer' without Transformer Engine",
        )
    ]


def mcore_write_item_needs_shim() -> bool:
    """True when torch's ``_write_item`` wants ``serialization_format`` and megatron-core does not pass it.

    torch >= 2.7 added that argument to a private function megatron-core 0.12 calls
    in its checkpoint writer; saving then fails with "_write_item() missing 1
    required positional argument: 'serialization_format'".
    """
    try:
        from torch.distributed.checkpoint import filesystem
    except ImportError:
        return False
    fn = getattr(filesystem, "_write_item", None)
    if fn is None or "serialization_format" not in inspect.signature(fn).parameters:
        return False
    try:
        import importlib.util

        spec = importlib.util.find_spec("megatron.core.dist_checkpointing.strategies.filesystem_async")
    except (ImportError, ValueError):
        return False
    if spec is None or not spec.origin:
        return False
    with open(spec.origin, encoding="utf-8") as fh:
        source = fh.read()
    return "serialization_format" not in source


class _AbsentTE:
    """Stands in for a Transformer Engine class that is not installed: nothing is an instance of it."""


_PEFT_TE_NAMES = {
    # module: {global name: its HAVE_* flag}, NeMo 2.3.1's placeholders for missing TE classes
    "nemo.collections.llm.peft.utils": {
        "TEColumnParallelLinear": "HAVE_TE_COL_LINEAR",
        "TELayerNormColumnParallelLinear": "HAVE_TE_LN_COL_LINEAR",
        "TERowParallelLinear": "HAVE_TE_ROW_LINEAR",
        "TELinear": "HAVE_TE_LINEAR",
    },
}


def peft_te_placeholders_need_patch() -> bool:
    """True when NeMo's LoRA would touch a Transformer Engine placeholder (TE not installed).

    NeMo 2.3.1's ``LoRA.transform`` evaluates ``m.__class__ == te.Linear`` for every
    Megatron linear layer, and ``get_adapter_attributes_from_linear`` evaluates
    ``isinstance(m, TELayerNormColumnParallelLinear)`` outside its ``HAVE_TE``
    guard; without TE both raise "transformer_engine.pytorch could not be imported".
    """
    return not has_module("transformer_engine") and has_module("nemo")


def _patch_peft_te_placeholders() -> bool:
    import sys
    import types

    import nemo.collections.llm.peft.lora as lora
    import nemo.collections.llm.peft.utils  # noqa: F401  (loads the module patched below)

    changed = False
    # (the placeholder raises on any attribute access, so test its type, not its attributes)
    if not lora.HAVE_TE and not isinstance(lora.te, types.SimpleNamespace):
        lora.te = types.SimpleNamespace(Linear=_AbsentTE)
        changed = True
    for module_name, names in _PEFT_TE_NAMES.items():
        module = sys.modules[module_name]
        for name, flag in names.items():
            if not getattr(module, flag, True) and getattr(module, name) is not _AbsentTE:
                setattr(module, name, _AbsentTE)
                changed = True
    return changed


def qwen2_import_norms_need_patch() -> bool:
    """True when NeMo's HF Qwen2 importer would drop the per-layer RMSNorm weights (TE not installed).

    Without TE, Megatron's local layer spec names them ``input_layernorm`` / ``pre_mlp_layernorm``;
    NeMo 2.3.1's ``HFQwen2Importer`` maps them only to TE's fused names
    (``linear_qkv.layer_norm_weight``), so ``llm.import_ckpt`` leaves all 48 at 1.0, without an error
    (found on the lent GPU; bench/gpu/lent_machine_compat/check_qwen2_norms.py shows it on CPU).
    """
    return not has_module("transformer_engine") and has_module("nemo")


def _patch_qwen2_import_norms() -> bool:
    import torch
    from nemo.collections.llm.gpt.model.qwen2 import HFQwen2Importer

    original = HFQwen2Importer.convert_state
    if getattr(original, "_jpqwen_local_norms", False):
        return False

    def convert_state(self, source, target):
        out = original(self, source, target)
        layers = getattr(out, "module", out).decoder.layers
        if getattr(layers[0].input_layernorm, "weight", None) is not None:  # local spec: separate norm modules
            with torch.no_grad():
                for layer, hf_layer in zip(layers, source.model.layers, strict=True):
                    layer.input_layernorm.weight.copy_(hf_layer.input_layernorm.weight)
                    layer.pre_mlp_layernorm.weight.copy_(hf_layer.post_attention_layernorm.weight)
        return out

    convert_state._jpqwen_local_norms = True  # type: ignore[attr-defined]
    HFQwen2Importer.convert_state = convert_state
    return True


def apply_runtime_patches() -> list[str]:
    """Patch what this process needs at run time; returns what was patched (idempotent)."""
    done = []
    if qwen2_import_norms_need_patch():
        _patch_qwen2_import_norms()
        done.append("NeMo's HF Qwen2 importer copies the RMSNorm weights into the local (non-TE) norm modules")
    if peft_te_placeholders_need_patch():
        _patch_peft_te_placeholders()
        done.append("NeMo LoRA's Transformer Engine class checks see a never-matching class (TE not installed)")
    if mcore_write_item_needs_shim():
        import megatron.core.dist_checkpointing.strategies.filesystem_async as fsa
        from torch.distributed.checkpoint import filesystem

        if not getattr(fsa._write_item, "_jpqwen_shim", False):
            torch_write_item = filesystem._write_item
            torch_format = filesystem.SerializationFormat.TORCH_SAVE

            def _write_item(*args, **kwargs):
                kwargs.setdefault("serialization_format", torch_format)
                return torch_write_item(*args, **kwargs)

            _write_item._jpqwen_shim = True  # type: ignore[attr-defined]
            fsa._write_item = _write_item
        done.append("megatron-core filesystem_async._write_item passes serialization_format=TORCH_SAVE (torch>=2.7)")
    return done


def runtime_changes(stack: Stack | None = None) -> list[Change]:
    """Run-time patches the training processes need (applied there by the RuntimeCompat callback)."""
    reasons = []
    if mcore_write_item_needs_shim():
        reasons.append(
            "torch >= 2.7 changed the private _write_item that megatron-core 0.12 calls when saving a "
            "checkpoint: wrapped with serialization_format=TORCH_SAVE"
        )
    no_te = (not stack.transformer_engine) if stack is not None else peft_te_placeholders_need_patch()
    if no_te:
        reasons.append(
            "NeMo 2.3.1's LoRA transform compares layers with Transformer Engine classes outside its HAVE_TE "
            "guard: without TE those checks see a class nothing is an instance of"
        )
    if not reasons:
        return []
    return [Change("trainer.callbacks[+]", "jpqwen.nemo.callbacks.RuntimeCompat", "; ".join(reasons))]


def all_changes(stack: Stack | None = None) -> list[Change]:
    stack = stack or Stack.detect()
    return [*model_changes(stack), *optim_changes(stack), *runtime_changes(stack)]
