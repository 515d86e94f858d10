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
        "old": "from torch.distributed.checkpoint.filesystem import DEFAULT_SUFFIX, _StoragePrefix, _write_item\n",
        "new": (
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
            "    _write_item = _torch_write_item\n"
        ),
        # apply only where the running torch needs it
        "needed": lambda: "serialization_format" in _write_item_params(),
    },
]


def _write_item_params() -> list[str]:
    from torch.distributed.checkpoint.filesystem import _write_item

    return list(inspect.signature(_write_item).parameters)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--site", required=True, type=Path, help="the --target folder the carried wheels went into")
    args = p.parse_args()
    applied = []
    for fix in FIXES:
        path = args.site / fix["file"]
        if not fix["needed"]():
            print(f"compat: {fix['id']}: not needed with this torch")
            continue
        text = path.read_text(encoding="utf-8")
        if fix["new"] in text:
            print(f"compat: {fix['id']}: already applied")
        elif fix["old"] not in text:
            print(f"compat: {fix['id']}: expected text not found in {path}; the stack changed", file=sys.stderr)
            return 1
        else:
            path.write_text(text.replace(fix["old"], fix["new"], 1), encoding="utf-8")
            print(f"compat: {fix['id']}: applied to {path}")
        applied.append({"id": fix["id"], "file": fix["file"], "why": fix["why"]})
    (args.site / "LENT_MACHINE_COMPAT.json").write_text(json.dumps(applied, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
