"""make plan   |   python -m pipeline.plan --config configs/default.yaml

Writes the fully resolved import / pretrain / lora recipes (NeMo-Run YAML) to
``<WORK_DIR>/plans/`` and prints a short summary: model, data, tokens, steps,
batch, LR, restore source, loggers, executor and what this environment changes.
Needs no GPU, and works before ``make data`` / ``make import`` (paths pending).
"""

from jpqwen.cli import base_parser, run_module
from jpqwen.nemo.plan import run


def parser():
    return base_parser("plan", __doc__)


if __name__ == "__main__":
    run_module("plan", run, parser())
