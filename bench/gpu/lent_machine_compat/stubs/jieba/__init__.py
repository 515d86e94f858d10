"""LENT-MACHINE-ONLY stand-in for jieba (Chinese word segmentation).

NeMo 2.3.1 imports jieba at module level in
nemo/collections/common/tokenizers/chinese_tokenizers.py, which
`from nemo.collections import llm` pulls in; the LLM path never calls it.
The real package is 19 MB and the lent machine's carry limit is 64 MiB, so the
bench harness puts this module on PYTHONPATH instead (bench/gpu/install_offline.sh).
Anything that actually uses jieba fails loudly here rather than silently.
The container (nvcr.io/nvidia/nemo:25.04) has the real jieba; this never ships.
"""

LENT_MACHINE_STUB = True


def __getattr__(name: str):
    raise RuntimeError(
        f"jieba.{name}: jieba is a stub on the lent GPU machine (bench/gpu/lent_machine_compat/stubs); "
        "the real package is not carried"
    )
