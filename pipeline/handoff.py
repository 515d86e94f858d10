"""make handoff   |   python -m pipeline.handoff --config configs/default.yaml [--set handoff.model=continued]

Packages one exported model for the SFT/DPO team in <WORK_DIR>/handoff/<name>/:
the Hugging Face model with tokenizer and generation config, a model card in
Japanese and English (lineage, data, hyperparameters, eval numbers, parity,
intended use, limits, licences), lineage.json, the eval results and a
manifest (manifest.json + SHA256SUMS) of every file. The package is
re-verified (manifest, AutoModelForCausalLM load, identical log-probs, no
secrets) before it gets its final name. With WANDB_API_KEY it is also logged
as a W&B model artifact; with HF_TOKEN and handoff.hub_repo it is uploaded to
the Hugging Face Hub. Tokens are never printed.
"""

from jpqwen.cli import base_parser, run_module
from jpqwen.release.handoff import run


def parser():
    return base_parser("handoff", __doc__)


if __name__ == "__main__":
    run_module("handoff", run, parser())
