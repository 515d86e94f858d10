"""The pipeline entries on a machine without a GPU: a clear message in seconds, exit 3, no stack trace."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from jpqwen.config import REPO_ROOT


@pytest.mark.parametrize("module", ["pretrain", "lora", "import_model"])
def test_gpu_stage_stops_in_seconds_without_gpu(module, tmp_path):
    env = {**os.environ, "JPQWEN_FORCE_NO_GPU": "1", "WORK_DIR": str(tmp_path / "work"), "CI": "1"}
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", f"pipeline.{module}", "--config", "configs/tiny.yaml"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )
    seconds = time.monotonic() - t0
    stage = "import" if module == "import_model" else module
    assert proc.returncode == 3, proc.stderr
    assert f"`make {stage}` needs 1 NVIDIA GPU" in proc.stderr and "make plan" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert proc.stderr.count("\n") <= 3  # one message + hint, no NeMo import warnings
    assert seconds < 60, f"took {seconds:.0f} s: NeMo must not be imported before the GPU check"


def test_entries_show_help():
    for module in ("pretrain", "lora", "import_model", "plan"):
        out = subprocess.run(
            [sys.executable, "-m", f"pipeline.{module}", "--help"], cwd=REPO_ROOT, capture_output=True, text=True
        )
        assert out.returncode == 0 and "--set" in out.stdout and "make " in out.stdout
