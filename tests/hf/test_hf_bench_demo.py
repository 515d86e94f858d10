"""bench/demo.py runs end to end (tiny model, CPU) and writes its JSON + Markdown."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_bench_demo_smoke_on_cpu(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("bench_demo", REPO / "bench" / "demo.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "demo"
    argv = ["--preset", "tiny", "--device", "cpu", "--new-tokens", "6", "--repeats", "2", "--warmup", "1"]
    assert bench.main([*argv, "--out", str(out)]) == 0
    result = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))
    assert [r["mode"] for r in result["rows"]] == ["plain", "static"]
    for r in result["rows"]:
        assert r["new_tokens"] == 6 and r["load_s"] > 0 and r["ttft_ms"] > 0 and r["decode_tokens_per_s"] > 0
        assert r["deterministic"]
    # both paths decode the same greedy tokens
    assert result["rows"][0]["sample"] == result["rows"][1]["sample"]
    md = out.with_suffix(".md").read_text(encoding="utf-8")
    assert "| static |" in md and "speed-up" in md
