"""Export a tied-embedding Qwen2 NeMo checkpoint to Hugging Face (NeMo 2.3.1's exporter cannot).

jpqwen trains Qwen2.5-0.5B with tied embeddings, as HF ships it (see
docs/training.md). NeMo 2.3.1's ``HFQwen2Exporter`` always maps
``output_layer.weight`` -> ``lm_head.weight`` and writes
``tie_word_embeddings=False``; a tied model has no ``output_layer.weight``, so
the stock export stops with "No matches found for source key:
output_layer.weight". :class:`TiedAwareQwen2Exporter` fills ``lm_head`` from
the embedding, restores the tie (``tie_word_embeddings=True``) and saves the HF
model without the duplicate ``lm_head``, as HF's own Qwen2.5-0.5B is stored.
Untied checkpoints export exactly as before.

Use::

    from jpqwen.nemo.hf_export import load_connector
    llm.export_ckpt(path=ckpt, target="hf", output_path=out, load_connector=load_connector)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _exporter_class():
    from nemo.collections.llm.gpt.model.qwen2 import HFQwen2Exporter
    from nemo.lightning import io
    from nemo.lightning.io.state import TransformFns

    class TiedAwareQwen2Exporter(HFQwen2Exporter):
        """``HFQwen2Exporter`` that honours ``share_embeddings_and_output_weights``."""

        def apply(self, output_path: Path) -> Path:
            from nemo.collections.llm.gpt.model.base import torch_dtype_from_mcore_config

            source, _ = self.nemo_load(str(self))
            target = self.init(torch_dtype_from_mcore_config(source.config))
            target = self.convert_state(source, target).cpu()
            if target.config.tie_word_embeddings:  # lm_head is the embedding: store it once, as HF does
                state = {k: v for k, v in target.state_dict().items() if k != "lm_head.weight"}
                target.save_pretrained(output_path, state_dict=state)
            else:
                target.save_pretrained(output_path)
            self.tokenizer.save_pretrained(output_path)
            return output_path

        def convert_state(self, source, target):
            tied = is_tied(source)
            # Megatron's local (non-TE) spec keeps RMSNorm weights in fp32 in a bf16 model; NeMo's
            # apply_transforms asserts that every target parameter keeps its dtype: round them once here
            match_dtype(source, next(target.parameters()).dtype)
            mapping = {
                "decoder.layers.*.self_attention.linear_proj.weight": "model.layers.*.self_attn.o_proj.weight",
                "decoder.layers.*.mlp.linear_fc2.weight": "model.layers.*.mlp.down_proj.weight",
                "decoder.layers.*.self_attention.linear_qkv.layer_norm_weight": "model.layers.*.input_layernorm.weight",
                "decoder.layers.*.mlp.linear_fc1.layer_norm_weight": "model.layers.*.post_attention_layernorm.weight",
                "decoder.final_layernorm.weight": "model.norm.weight",
            }
            if _has_key(source, "decoder.layers.0.input_layernorm.weight"):  # local (non-TE) spec: separate norms
                mapping.pop("decoder.layers.*.self_attention.linear_qkv.layer_norm_weight")
                mapping.pop("decoder.layers.*.mlp.linear_fc1.layer_norm_weight")
                mapping["decoder.layers.*.input_layernorm.weight"] = "model.layers.*.input_layernorm.weight"
                mapping["decoder.layers.*.pre_mlp_layernorm.weight"] = "model.layers.*.post_attention_layernorm.weight"
            transforms = [
                io.state_transform(
                    source_key="decoder.layers.*.self_attention.linear_qkv.weight",
                    target_key=(
                        "model.layers.*.self_attn.q_proj.weight",
                        "model.layers.*.self_attn.k_proj.weight",
                        "model.layers.*.self_attn.v_proj.weight",
                    ),
                    fn=TransformFns.split_qkv,
                ),
                io.state_transform(
                    source_key="decoder.layers.*.self_attention.linear_qkv.bias",
                    target_key=(
                        "model.layers.*.self_attn.q_proj.bias",
                        "model.layers.*.self_attn.k_proj.bias",
                        "model.layers.*.self_attn.v_proj.bias",
                    ),
                    fn=TransformFns.split_qkv_bias,
                ),
                io.state_transform(
                    source_key="decoder.layers.*.mlp.linear_fc1.weight",
                    target_key=("model.layers.*.mlp.gate_proj.weight", "model.layers.*.mlp.up_proj.weight"),
                    fn=TransformFns.split_fc1,
                ),
                io.state_transform(
                    source_key="embedding.word_embeddings.weight",
                    target_key="model.embed_tokens.weight",
                    fn=TransformFns.prune_padding,
                ),
            ]
            # the HF target is built untied (apply_transforms re-registers every parameter, which would
            # break a tie anyway); a tied source fills lm_head from the embedding, then the tie is restored
            transforms.append(
                io.state_transform(
                    source_key="embedding.word_embeddings.weight" if tied else "output_layer.weight",
                    target_key="lm_head.weight",
                    fn=TransformFns.prune_padding,
                )
            )
            target = io.apply_transforms(source, target, mapping=mapping, transforms=transforms)
            if tied:
                target.config.tie_word_embeddings = True
                target.tie_weights()
            return target

    return TiedAwareQwen2Exporter


def match_dtype(source: Any, dtype: Any) -> list[str]:
    """Cast the source's floating-point parameters that differ from ``dtype`` (in place); their names."""
    cast = []
    for name, p in _module(source).named_parameters():
        if p.is_floating_point() and p.dtype != dtype:
            p.data = p.data.to(dtype)
            cast.append(name)
    return cast


def _module(source: Any) -> Any:
    return getattr(source, "module", source)


def _has_key(source: Any, key: str) -> bool:
    return key in _module(source).state_dict()


def is_tied(source: Any) -> bool:
    """Tied when the model says so (NeMo config or Megatron module) or has no separate output_layer weight."""
    for obj in (source, _module(source)):
        flag = getattr(getattr(obj, "config", None), "share_embeddings_and_output_weights", None)
        if flag is None:
            flag = getattr(obj, "share_embeddings_and_output_weights", None)
        if flag is not None:
            return bool(flag)
    return not _has_key(source, "output_layer.weight")


def tied_aware_exporter(path: str | Path) -> Any:
    return _exporter_class()(str(path))


def load_connector(path: str | Path, target: str) -> Any:
    """Drop-in for ``llm.export_ckpt(load_connector=...)``: the tied-aware exporter for Qwen2 -> HF."""
    from nemo.collections.llm.api import load_connector_from_trainer_ckpt
    from nemo.collections.llm.gpt.model.qwen2 import HFQwen2Exporter

    connector = load_connector_from_trainer_ckpt(Path(path), target)
    if target == "hf" and type(connector) is HFQwen2Exporter:
        return tied_aware_exporter(path)
    return connector
