from dataclasses import dataclass

import pytest

from jpqwen.config import fingerprint, load_config, parse_override, section
from jpqwen.errors import ConfigError


@dataclass
class Knobs:
    steps: int = 10
    lr: float = 1e-4


def test_default_preset_has_every_stage_section():
    cfg = load_config()
    for name in ("run", "data", "import", "pretrain", "lora", "export", "eval", "demo", "handoff"):
        assert name in cfg, name


def test_override_is_parsed_as_yaml():
    assert parse_override("pretrain.max_steps=20") == (["pretrain", "max_steps"], 20)
    assert parse_override("data.source=sample") == (["data", "source"], "sample")
    cfg = load_config(overrides=["knobs.steps=3", "knobs.lr=2e-5"])
    assert section(cfg, "knobs", Knobs) == Knobs(steps=3, lr=2e-5)


def test_extends_merges_sections(tmp_path):
    (tmp_path / "base.yaml").write_text("knobs: {steps: 5, lr: 0.1}\n")
    (tmp_path / "child.yaml").write_text("extends: base.yaml\nknobs: {steps: 7}\n")
    cfg = load_config(tmp_path / "child.yaml")
    assert section(cfg, "knobs", Knobs) == Knobs(steps=7, lr=0.1)


def test_unknown_key_names_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("knobs: {stepz: 5}\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml.*stepz"):
        section(load_config(path), "knobs", Knobs)


def test_broken_yaml_names_file_and_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("a: 1\nb: [unclosed\nc: 3\n")
    with pytest.raises(ConfigError, match=r"broken\.yaml:\d+"):
        load_config(path)


def test_missing_config_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")


def test_fingerprint_is_stable_and_sensitive():
    a = fingerprint({"x": 1, "y": [1, 2]})
    assert a == fingerprint({"y": [1, 2], "x": 1})
    assert a != fingerprint({"x": 2, "y": [1, 2]})
