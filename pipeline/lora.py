"""make lora   |   python -m pipeline.lora --config configs/default.yaml [--set lora.dataset=<jsonl or HF id>]

LoRA on Japanese instruction pairs (``input``/``output`` jsonl; the small set in
``jpqwen/resources/sample/lora/`` by default) starting from the continual
pretraining run's final checkpoint (found from its stamp), built from NeMo's
``llm.qwen25_500m.finetune_recipe(peft_scheme="lora")`` and run through NeMo-Run.
Outputs in ``<WORK_DIR>/runs/lora/``; the stamp records the adapter ``checkpoint``.
"""

from jpqwen.cli import base_parser, run_module
from jpqwen.nemo.train import run_lora


def parser():
    return base_parser("lora", __doc__)


if __name__ == "__main__":
    run_module("lora", run_lora, parser())
