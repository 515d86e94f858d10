"""Fixtures shared by the NeMo tests: one NeMo import, a one-rank process group."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="module")
def llm():
    from nemo.collections import llm

    return llm


@pytest.fixture(scope="module")
def process_group():
    """A one-rank gloo group: megatron-core's dataset builder and model code ask for ranks."""
    import torch.distributed as dist

    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29517")
    started = not dist.is_initialized()
    if started:
        dist.init_process_group("gloo", rank=0, world_size=1)
    yield
    if started:
        dist.destroy_process_group()


@pytest.fixture
def model_parallel(process_group):
    """Megatron's model-parallel state (TP=PP=1) for building real GPT modules on CPU."""
    from megatron.core import parallel_state

    parallel_state.initialize_model_parallel(1, 1)
    yield
    parallel_state.destroy_model_parallel()
