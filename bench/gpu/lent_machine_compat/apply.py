"""Apply the LENT-MACHINE-ONLY compatibility fixes to the carried stack in --site.

The lent GPU machine runs torch 2.11; NeMo 2.3.1 / megatron-core 0.12.1 were
built for the torch of nvcr.io/nvidia/nemo:25.04 (2.7 pre-release). Each fix
below names the file, the exact text it replaces, and why. A fix whose text is
not found stops the install (the stack changed: re-check the fix, do not guess).
The container path never runs this: the NeMo image ships the stack as NVIDIA
built it. Applied fixes are listed in <site>/LENT_MACHINE_COMPAT.json.
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import json
import sys
from pathlib import Path

FIXES = [
    {
        "id": "mcore-0.12.1-write-item-serialization-format",
        "file": "megatron/core/dist_checkpointing/strategies/filesystem_async.py",
        "why": (
            "torch >= 2.7 made `serialization_format` a required argument of the private "
            "torch.distributed.checkpoint.filesystem._write_item; megatron-core 0.12.1 calls it "
            "without one, so every checkpoint save (import, pretrain, lora) fails with "
            "\"_write_item() missing 1 required positional argument: 'serialization_format'\". "
            "megatron-core >= 0.13 checks the signature the same way this fix does."
        ),
        "edits": [
            (
                "from torch.distributed.checkpoint.filesystem import DEFAULT_SUFFIX, _StoragePrefix, _write_item\n",
                "from torch.distributed.checkpoint.filesystem import DEFAULT_SUFFIX, _StoragePrefix\n"
                "from torch.distributed.checkpoint.filesystem import _write_item as _torch_write_item\n"
                "import inspect as _inspect\n"
                "\n"
                "# LENT-MACHINE-ONLY (bench/gpu/lent_machine_compat): torch >= 2.7 requires serialization_format.\n"
                "if 'serialization_format' in _inspect.signature(_torch_write_item).parameters:\n"
                "    from torch.distributed.checkpoint.filesystem import SerializationFormat as _SerializationFormat\n"
                "\n"
                "    def _write_item(*args, **kwargs):\n"
                "        return _torch_write_item(*args, serialization_format=_SerializationFormat.TORCH_SAVE, **kwargs)\n"
                "\n"
                "else:\n"
                "    _write_item = _torch_write_item\n",
            )
        ],
        # apply only where the running torch needs it
        "needed": lambda: "serialization_format" in _write_item_params(),
        # Off unless asked for (--enable): jpqwen itself wraps _write_item at run time
        # (jpqwen/nemo/environment.py apply_runtime_patches), and the chain must exercise that path.
        "default": False,
    },
    {
        "id": "nemo-2.3.1-qwen2-hf-connectors-local-spec-norms",
        "file": "nemo/collections/llm/gpt/model/qwen2.py",
        "why": (
            "Without Transformer Engine NeMo builds the local (non-TE) layer spec, whose RMSNorms are "
            "decoder.layers.N.input_layernorm / pre_mlp_layernorm; NeMo 2.3.1's HF Qwen2 connectors only "
            "know the TE names (self_attention.linear_qkv.layer_norm_weight, mlp.linear_fc1.layer_norm_weight). "
            "Import then SILENTLY leaves the 48 per-layer norm weights at their init value 1.0 (no error), and "
            "export fails with IndexError 'index 0 is out of bounds for axis 0 with size 0'. This maps the "
            "TE names to the local ones when NeMo's HAVE_TE is False; with TE nothing changes."
        ),
        # both connectors end with `return io.apply_transforms(<args>`: rename the mapping just before
        "edits": [
            (
                "        return io.apply_transforms(source, target, mapping=mapping, transforms=transforms)\n",
                "        mapping = _lent_machine_local_norm_names(mapping)\n"
                "        return io.apply_transforms(source, target, mapping=mapping, transforms=transforms)\n",
            ),
            (
                "        return io.apply_transforms(\n            source,\n            target,\n            mapping=mapping,\n",
                "        mapping = _lent_machine_local_norm_names(mapping)\n"
                "        return io.apply_transforms(\n            source,\n            target,\n            mapping=mapping,\n",
            ),
        ],
        "append": (
            "def _lent_machine_local_norm_names(mapping):\n"
            "    from nemo.collections.llm.gpt.model.base import HAVE_TE\n"
            "\n"
            "    if HAVE_TE:\n"
            "        return mapping\n"
            "    local = {\n"
            "        '.self_attention.linear_qkv.layer_norm_weight': '.input_layernorm.weight',\n"
            "        '.mlp.linear_fc1.layer_norm_weight': '.pre_mlp_layernorm.weight',\n"
            "    }\n"
            "\n"
            "    def rename(key):\n"
            "        for te_name, local_name in local.items():\n"
            "            key = key.replace(te_name, local_name)\n"
            "        return key\n"
            "\n"
            "    return {rename(k): rename(v) for k, v in mapping.items()}\n"
        ),
        "needed": lambda: importlib.util.find_spec("transformer_engine") is None,
        # Off unless asked for: jpqwen handles both directions itself (import: run-time patch in
        # jpqwen/nemo/environment.py; export: jpqwen/nemo/hf_export.py), and the chain must exercise that.
        # bench/gpu/stack_smoke.py (stock NeMo import -> export) needs it on.
        "default": False,
    },
]


def _write_item_params() -> list[str]:
    from torch.distributed.checkpoint.filesystem import _write_item

    return list(inspect.signature(_write_item).parameters)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--site", required=True, type=Path, help="the --target folder the carried wheels went into")
    p.add_argument("--enable", action="append", default=[], metavar="ID", help="also apply this opt-in fix")
    args = p.parse_args()
    applied = []
    for fix in FIXES:
        path = args.site / fix["file"]
        if not fix.get("default", True) and fix["id"] not in args.enable:
            print(f"compat: {fix['id']}: opt-in, not enabled")
            continue
        if not fix["needed"]():
            print(f"compat: {fix['id']}: not needed here")
            continue
        text = path.read_text(encoding="utf-8")
        marker = f"LENT-MACHINE-ONLY fix {fix['id']}"
        if marker in text:
            print(f"compat: {fix['id']}: already applied")
        else:
            for old, new in fix["edits"]:
                n = text.count(old)
                if n != fix.get("count", 1):
                    print(
                        f"compat: {fix['id']}: expected {fix.get('count', 1)} x {old.strip()[:60]!r} in {path}, "
                        f"found {n}; the stack changed",
                        file=sys.stderr,
                    )
                    return 1
                text = text.replace(old, new)
            text += f"\n# {marker}: see bench/gpu/lent_machine_compat/README.md\n" + fix.get("append", "")
            path.write_text(text, encoding="utf-8")
            print(f"compat: {fix['id']}: applied to {path}")
        applied.append({"id": fix["id"], "file": fix["file"], "why": fix["why"]})
    (args.site / "LENT_MACHINE_COMPAT.json").write_text(json.dumps(applied, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
