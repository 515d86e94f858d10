"""Import one module of a heavy package without running the package's ``__init__`` first.

``make data`` needs two small base classes from NeMo Curator (``DocumentFilter``,
``DocumentModifier``) and megatron-core's ``IndexedDatasetBuilder``. Importing them the
usual way runs ``nemo_curator/__init__`` (Dask, pandas, transformers, OpenAI clients,
scikit-learn: ~5 CPU-seconds) and ``megatron/core/__init__`` (tensor parallel layers,
transformers: ~2 CPU-seconds beyond torch) although the modules themselves need neither.

:func:`import_module` loads the real module file; the packages above it are entered in
``sys.modules`` with their real spec and path but with their ``__init__`` *deferred*:
it runs, into the same module object, the first time anything asks the package for a
name it does not have yet, other than a submodule (``from nemo_curator import ScoreFilter``,
``nemo_curator.__version__``, ``from megatron.core import parallel_state``). So the
classes are the very objects the full import gives (``isinstance`` checks against
``nemo_curator.filters.DocumentFilter`` hold; the curator executor and the tests use
the full packages), only the unused part of the import is skipped. A package
already imported is used as it is.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
from types import ModuleType

_LOCK = threading.RLock()


def _deferred_package(name: str) -> ModuleType:
    """``name``'s package module, its ``__init__`` not run yet (run on the first missing attribute)."""
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None or spec.origin in (None, "namespace"):
        return importlib.import_module(name)  # namespace package: there is no __init__ to defer
    module = importlib.util.module_from_spec(spec)
    state = {"loading": False}

    def __getattr__(attr: str):  # noqa: N807 (PEP 562 module __getattr__)
        if not state["loading"] and module.__dict__.get("__getattr__") is __getattr__:
            sub = f"{name}.{attr}"
            if sub in sys.modules or importlib.util.find_spec(sub) is not None:
                return importlib.import_module(sub)  # a submodule (``from pkg import submodule``): no __init__ needed
        with _LOCK:
            if state["loading"]:  # inside the package's own __init__: ordinary partial-import semantics
                raise AttributeError(f"partially initialized module {name!r} has no attribute {attr!r}")
            if module.__dict__.get("__getattr__") is __getattr__:
                state["loading"] = True
                try:
                    spec.loader.exec_module(module)  # the real __init__, into this module object
                finally:
                    state["loading"] = False
                    if module.__dict__.get("__getattr__") is __getattr__:
                        del module.__dict__["__getattr__"]
        try:
            return module.__dict__[attr]
        except KeyError:
            hook = module.__dict__.get("__getattr__")  # the package's own PEP 562 hook, if it has one
            if hook is not None:
                return hook(attr)
            raise AttributeError(f"module {name!r} has no attribute {attr!r}") from None

    module.__getattr__ = __getattr__
    return module


def import_module(*names: str) -> ModuleType:
    """``importlib.import_module`` of each of ``names`` in turn (the last one is returned), without
    running the ``__init__`` of packages not imported yet. Should that fail (a package whose
    modules rely on its ``__init__``), everything it added is dropped and the ordinary import runs."""
    with _LOCK:
        before = set(sys.modules)
        try:
            for name in names:
                module = _import_one(name)
        except ImportError:
            for added in set(sys.modules) - before:
                del sys.modules[added]
            for name in names:
                module = importlib.import_module(name)
    return module


def _import_one(name: str) -> ModuleType:
    if name in sys.modules:
        return sys.modules[name]
    parts = name.split(".")
    for i in range(1, len(parts)):
        pkg = ".".join(parts[:i])
        if pkg in sys.modules:
            continue
        module = _deferred_package(pkg)
        sys.modules[pkg] = module
        if i > 1:
            setattr(sys.modules[".".join(parts[: i - 1])], parts[i - 1], module)
    return importlib.import_module(name)
