"""make pretrain   |   python -m pipeline.pretrain --config configs/default.yaml [--set pretrain.max_steps=20]

Continual pretraining of the imported Qwen2.5-0.5B on the Japanese corpus from
``make data`` (+ a few % English replay), built from NeMo's
``llm.qwen25_500m.pretrain_recipe`` with the imported weights restored, and run
through NeMo-Run (torchrun on this box, ``GPUS`` processes; or Slurm with
``--set pretrain.executor=slurm``). Steps: ``MAX_STEPS=`` or a token budget
``TOKENS=`` (e.g. 500M). Checkpoints, TensorBoard and the resolved recipe land
in ``<WORK_DIR>/runs/pretrain/<run>-<fingerprint>/``; the stamp records the
final ``checkpoint``.
"""

from jpqwen.cli import base_parser, run_module
from jpqwen.nemo.train import run_pretrain


def parser():
    return base_parser("pretrain", __doc__)


if __name__ == "__main__":
    run_module("pretrain", run_pretrain, parser())
