"""Fixtures for the HF side: tiny random Qwen2 models standing in for each stage,
and upstream stage records (import / data / export) pointing at them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jpqwen.paths import WorkDir
from jpqwen.stage import Stage

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "jpqwen" / "resources" / "sample"
JA_PROMPTS = ["日本の首都は", "富士山は"]
EN_PROMPTS = ["The capital of Japan is"]


@pytest.fixture(scope="session")
def stage_models(tmp_path_factory, tiny_qwen_dir) -> dict[str, Path]:
    """base = the shared tiny model; continued / lora_merged = other random seeds (different weights)."""
    from jpqwen.fixtures import make_random_qwen2

    root = tmp_path_factory.mktemp("stage_models")
    return {
        "base": tiny_qwen_dir,
        "continued": make_random_qwen2(root / "continued", seed=1),
        "lora_merged": make_random_qwen2(root / "lora_merged", seed=2),
    }


@pytest.fixture
def prompt_files(tmp_path) -> dict[str, Path]:
    ja, en = tmp_path / "ja_prompts.json", tmp_path / "en_prompts.json"
    ja.write_text(json.dumps(JA_PROMPTS, ensure_ascii=False), encoding="utf-8")
    en.write_text(json.dumps({"prompts": [{"prompt": p} for p in EN_PROMPTS]}), encoding="utf-8")
    return {"ja": ja, "en": en}


def record(work: WorkDir, name: str, outputs: dict, config=None, metrics=None) -> Path:
    """Write an upstream stage record with the real Stage bookkeeping."""
    return Stage(name, work, config=config or {"test": True}, inputs=None).finish(outputs, metrics)


def build_upstream(work: WorkDir, stage_models: dict[str, Path], scratch: Path) -> WorkDir:
    """Records of finished import, data and export stages (tiny models, sample data)."""
    record(work, "import", {"hf_dir": str(stage_models["base"])})
    ja = scratch / "validation.jsonl"
    ja.write_text((SAMPLE / "ja_wiki" / "clean_b.jsonl").read_text(encoding="utf-8"), encoding="utf-8")
    en = scratch / "en_validation.jsonl"
    en.write_text((SAMPLE / "en" / "en_wiki.jsonl").read_text(encoding="utf-8"), encoding="utf-8")
    record(work, "data", {"validation_jsonl": str(ja), "en_validation_jsonl": str(en)})
    parity = scratch / "parity.json"
    parity.write_text(json.dumps({"continued": {"passed": True}, "lora_merged": {"passed": True}}), encoding="utf-8")
    record(work, "export", {"models": {k: str(v) for k, v in stage_models.items()}, "parity": str(parity)})
    return work


@pytest.fixture
def upstream(work, stage_models, tmp_path) -> WorkDir:
    """A work dir where import, data and export have finished."""
    return build_upstream(work, stage_models, tmp_path)


@pytest.fixture(scope="session")
def upstream_builder():
    return build_upstream


@pytest.fixture(scope="session")
def write_record():
    """``write_record(work, stage, outputs, config=None, metrics=None)``: an upstream stage record."""

    def _write(work: WorkDir, name: str, outputs: dict, config=None, metrics=None) -> Path:
        return record(work, name, outputs, config, metrics)

    return _write
