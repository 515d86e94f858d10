"""make export   |   python -m pipeline.export --config configs/default.yaml [--set export.parity_atol=0.05]

Converts the continual-pretraining checkpoint, and the LoRA result merged into
it, from NeMo to Hugging Face format (llm.export_ckpt / llm.peft.merge_lora),
gives each the base model's tokenizer and generation config, and verifies it
against the NeMo model: next-token log-probabilities on fixed Japanese prompts
must agree within export.parity_atol nats. Outputs <WORK_DIR>/export/<stage>/
(HF directories) and parity.{json,md}; a failed check stops with the worst
prompt and token and keeps the directory as <stage>.rejected. Needs the GPU
and NeMo (stops in seconds without them).
"""

from jpqwen.cli import base_parser, run_module
from jpqwen.release.export import run


def parser():
    return base_parser("export", __doc__)


if __name__ == "__main__":
    run_module("export", run, parser())
