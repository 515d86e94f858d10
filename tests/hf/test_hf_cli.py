"""The command lines of export / eval / handoff / demo do not grow by accident."""

from __future__ import annotations

import pytest

BASE = ["--config", "--force", "--help", "--set", "--work-dir", "-h"]


def options(module) -> list[str]:
    return sorted(o for a in module.parser()._actions for o in a.option_strings)


@pytest.mark.parametrize("name", ["export", "eval", "handoff"])
def test_stage_clis_have_only_the_base_options(name):
    import importlib

    assert options(importlib.import_module(f"pipeline.{name}")) == BASE


def test_demo_cli():
    import pipeline.demo

    extra = ["--host", "--instruction", "--json", "--port", "--prompt", "--stages", "--web"]
    assert options(pipeline.demo) == sorted(BASE + extra)
    args = pipeline.demo.parser().parse_args(["--web", "--host", "0.0.0.0", "--port", "7860"])  # compose `demo`
    assert args.web and args.host == "0.0.0.0" and args.port == 7860
