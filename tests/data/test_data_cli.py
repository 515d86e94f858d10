"""The command line and config surface of `make data` (pinned so it does not grow by accident)."""

from __future__ import annotations

import pytest

from jpqwen.config import load_config
from jpqwen.data.config import DataConfig, data_config
from jpqwen.errors import ConfigError


def test_cli_flags():
    from pipeline.data import parser

    p = parser()
    flags = sorted(a.option_strings[0] for a in p._actions if a.option_strings and a.option_strings[0] != "-h")
    assert flags == ["--config", "--executor", "--force", "--set", "--source", "--work-dir", "--workers"]
    args = p.parse_args(["--source", "llm-jp-v3-ja-wiki", "--workers", "3", "--executor", "dask"])
    assert (args.source, args.workers, args.executor) == ("llm-jp-v3-ja-wiki", 3, "dask")


def test_default_preset_matches_the_dataclass_defaults():
    """configs/default.yaml spells out the defaults; they must be the code's (one source of truth)."""
    assert data_config(load_config(), environ={}) == DataConfig()


def test_env_overrides_and_validation():
    cfg = load_config(overrides=["data.workers=2"])
    dc = data_config(cfg, environ={"DATA_SOURCE": "/x/*.jsonl.gz", "EXECUTOR": "dask"})
    assert (dc.source, dc.executor, dc.workers) == ("/x/*.jsonl.gz", "curator", 2)
    with pytest.raises(ConfigError, match="executor"):
        data_config(cfg, environ={"EXECUTOR": "spark"})
    with pytest.raises(ConfigError, match="near_dedup"):
        data_config(load_config(overrides=["data.near_dedup.bandz=3"]), environ={})
    assert DataConfig().tokenizer_backend == "fastokens"
    with pytest.raises(ConfigError, match=r"tokenizer_backend must be one of \('fastokens', 'tiktoken', 'hf'\)"):
        data_config(load_config(overrides=["data.tokenizer_backend=sentencepiece"]), environ={})


def test_identity_ignores_how_work_is_spread():
    a, b = DataConfig(workers=1, executor="local"), DataConfig(workers=8, executor="curator")
    assert a.identity() == b.identity()
    assert DataConfig(chunk_mb=1).identity() != a.identity()
