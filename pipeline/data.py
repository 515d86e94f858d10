"""make data   |   python -m pipeline.data --config configs/default.yaml [--source sample] [--workers 4]

Reads Japanese Wikipedia (DATA_SOURCE: the shipped sample, LLM-jp Corpus v3
ja_wiki downloaded into DATA_DIR, or a path/glob of .jsonl/.jsonl.gz), normalizes
it, applies the Swallow/Uzushio quality filters, removes exact and near
duplicates, splits train/validation, tokenizes with the Qwen2.5 tokenizer and
writes Megatron datasets plus a data card to <WORK_DIR>/data/ (details:
docs/data.md). An interrupted run resumes; an unchanged one does nothing.
"""

import os

# One BLAS thread, set before anything loads numpy: this stage makes no BLAS call and its parallelism
# is its worker processes, but OpenBLAS starts a thread per core (and their buffers) when numpy and
# scipy load it: ~0.3 CPU-s of every run here, measured.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from jpqwen.cli import base_parser, run_module  # noqa: E402
from jpqwen.data.stage import run  # noqa: E402


def parser():
    p = base_parser("data", __doc__)
    p.add_argument(
        "--source",
        default=None,
        help="sample | llm-jp-v3-ja-wiki | a file, directory or glob of .jsonl/.jsonl.gz "
        "(default: env DATA_SOURCE, else data.source)",
    )
    p.add_argument(
        "--workers", type=int, default=None, help="worker processes (default data.workers; 0 = all usable cores)"
    )
    p.add_argument(
        "--executor",
        choices=["local", "curator", "dask"],
        default=None,
        help="local process pool, or NeMo Curator on Dask (curator == dask; env EXECUTOR)",
    )
    return p


if __name__ == "__main__":
    run_module("data", run, parser())
