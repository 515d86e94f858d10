"""Shared fixtures: the real Qwen tokenizer, a tiny random Qwen2, a work dir."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from jpqwen.paths import WorkDir

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _hermetic_env(monkeypatch, tmp_path):
    """No test reaches a hub, a real W&B account or the user's .env."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.setenv("WANDB_MODE", os.environ.get("JPQWEN_TEST_WANDB_MODE", "offline"))
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("JPQWEN_ENV_FILE", str(tmp_path / "no.env"))
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("HF_TOKEN", raising=False)


@pytest.fixture(scope="session", autouse=True)
def _numba_cache(tmp_path_factory):
    """One numba cache for the session (in-process stages and subprocesses): the data stage's
    kernels compile once (~8 CPU-s), not once per test WORK_DIR (the stage's default place)."""
    if "NUMBA_CACHE_DIR" in os.environ:
        yield
        return
    os.environ["NUMBA_CACHE_DIR"] = str(tmp_path_factory.mktemp("numba_cache"))
    yield
    os.environ.pop("NUMBA_CACHE_DIR", None)


@pytest.fixture
def work(tmp_path) -> WorkDir:
    return WorkDir(tmp_path / "work")


@pytest.fixture(scope="session")
def qwen_tokenizer_dir(tmp_path_factory) -> Path:
    from jpqwen.fixtures import write_qwen25_tokenizer

    return write_qwen25_tokenizer(tmp_path_factory.mktemp("qwen_tokenizer"))


@pytest.fixture(scope="session")
def tiny_qwen_dir(tmp_path_factory) -> Path:
    """A random-initialised Qwen2 (Qwen2.5 architecture, tiny sizes) + real tokenizer."""
    from jpqwen.fixtures import make_random_qwen2

    return make_random_qwen2(tmp_path_factory.mktemp("tiny_qwen"), preset="tiny", seed=0)
