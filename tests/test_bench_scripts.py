"""`python bench/<script>.py` puts bench/ first on sys.path: no module there may shadow a package.

Found on the lent GPU: a bench/tokenizers.py made `python bench/demo.py` import it instead of the
`tokenizers` package, and transformers failed to import.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench"


def test_no_bench_module_shadows_an_installed_or_stdlib_module():
    # the folders whose scripts are run by path (bench/gpu/lent_machine_compat/stubs shadows jieba on
    # purpose, and only through PYTHONPATH on the lent machine)
    entries = [p for d in (BENCH, BENCH / "gpu") for p in d.iterdir()]
    names = sorted({p.stem for p in entries if p.suffix == ".py"} | {p.name for p in entries if p.is_dir()})
    shadowing = []
    for name in names:
        if not name.isidentifier() or name.startswith("__"):  # __init__, __pycache__
            continue
        if name in sys.stdlib_module_names:
            shadowing.append(name)
            continue
        spec = importlib.util.find_spec(name) if name not in sys.modules else sys.modules[name].__spec__
        if spec is not None and spec.origin and BENCH not in Path(spec.origin).resolve().parents:
            shadowing.append(name)
    assert not shadowing, f"bench/ names that shadow modules for `python bench/<script>.py`: {shadowing}"
