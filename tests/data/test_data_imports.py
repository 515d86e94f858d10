"""The data stage imports NeMo Curator's base classes and megatron-core's writer without their
packages' heavy ``__init__`` (start-up time), and they are still the very same classes; the local
executor's rules need no NeMo Curator import at all, their DocumentFilters are made on first use."""

from __future__ import annotations

import subprocess
import sys

_CHECK = """
import sys
import jpqwen.data.stage
from jpqwen.data.config import FilterConfig
from jpqwen.data.filters import build_rules, first_failure, first_failures, stats_of
rules = build_rules(FilterConfig())  # what the local executor runs: NeMo Curator's filter module not
text = "日本語の文章です。" * 60  # imported (it imports its Dask datasets, pandas with them: ~1 s)
failed = first_failure(text, rules)
assert first_failures([text], [stats_of(text).codepoints], rules)[0] == [failed] and rules[failed[0]].reason
heavy = [m for m in ("nemo_curator.filters.doc_filter", "nemo_curator.datasets", "pandas") if m in sys.modules]
assert not heavy, heavy
from jpqwen.data.filters import JapaneseFilter, DocLengthFilter, as_document_filter, build_filters
assert "nemo_curator.filters.doc_filter" in sys.modules
assert [type(f).__name__ for f in build_filters(FilterConfig())] == [
    type(r).__name__.replace("Rule", "Filter") for r in rules
]
assert type(as_document_filter(rules[0])) is DocLengthFilter and as_document_filter(rules[0]).args() == rules[0].args()
from jpqwen.data.normalize import JapaneseNormalizer
from jpqwen.data.writer import indexed_dataset
builder = indexed_dataset().IndexedDatasetBuilder
skipped = [m for m in ("nemo_curator.modules", "megatron.core.tensor_parallel", "transformers") if m in sys.modules]
assert not skipped, skipped

import nemo_curator  # the full packages afterwards: their __init__ runs, the classes are the same objects
from megatron.core import tensor_parallel
from megatron.core.datasets.indexed_dataset import IndexedDatasetBuilder
from nemo_curator import ScoreFilter
from nemo_curator.filters import DocumentFilter
from nemo_curator.modifiers import DocumentModifier

assert issubclass(JapaneseFilter, DocumentFilter) and issubclass(JapaneseNormalizer, DocumentModifier)
assert all(isinstance(f, DocumentFilter) for f in build_filters(FilterConfig()))
assert IndexedDatasetBuilder is builder and ScoreFilter and nemo_curator.__version__ and tensor_parallel
try:
    nemo_curator.no_such_name
except AttributeError:
    pass
else:
    raise AssertionError("a missing attribute must still raise AttributeError")
print("ok")
"""


def test_light_imports_are_the_real_classes():
    out = subprocess.run([sys.executable, "-W", "ignore", "-c", _CHECK], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip() == "ok"
