"""make import   |   python -m pipeline.import_model --config configs/default.yaml

Converts Qwen2.5-0.5B from Hugging Face into a NeMo 2 checkpoint at
``<WORK_DIR>/models/<import.name>`` with NeMo's own importer (``llm.import_ckpt``).
The source is ``MODEL_SOURCE`` or ``import.source``: ``hf://Qwen/Qwen2.5-0.5B``
(the HF cache, or a download when online) or a local HF directory. Offline
without a local copy it stops with a clear message. The stamp records
``nemo_checkpoint`` and ``hf_dir``; the resolved recipe lands beside the checkpoint.
"""

from jpqwen.cli import base_parser, run_module
from jpqwen.nemo.import_ckpt import run


def parser():
    return base_parser("import_model", __doc__)


if __name__ == "__main__":
    run_module("import", run, parser())
