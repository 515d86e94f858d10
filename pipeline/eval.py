"""make eval   |   python -m pipeline.eval --config configs/default.yaml [--set eval.max_docs_ja=200]

Scores every model the export stage produced (base, continual pretraining,
LoRA merged; whichever exist) with Japanese bits per character on the held-out
validation documents from `make data`, English bits per character on the
English sample (forgetting), and greedy continuations of fixed prompts. Writes
<WORK_DIR>/eval/results.json, results.md and results.png and logs them to W&B
(offline without WANDB_API_KEY). Runs on a GPU or a CPU.
"""

from jpqwen.cli import base_parser, run_module
from jpqwen.hf.evaluate import run


def parser():
    return base_parser("eval", __doc__)


if __name__ == "__main__":
    run_module("eval", run, parser())
