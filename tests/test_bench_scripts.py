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


def _bench_data_result(with_large_megatron: bool) -> dict:
    """A hand-built `python -m bench.data` result (the shape main() writes), small numbers."""

    def run(name: str, workers: int, cpu: float, mb: float, pss: float = 800.0) -> dict:
        return {
            "name": name,
            "workers": workers,
            "seconds": cpu,
            "cpu_seconds": cpu,
            "peak_pss_mb": pss,
            "mb": mb,
            "mb_per_s": round(mb / cpu, 3),
            "mb_per_s_per_core": round(mb / cpu / workers, 3),
            "mb_per_cpu_s": round(mb / cpu, 3),
        }

    runs = [
        run("jpqwen make data", 1, 12.5, 100.0),
        run("Megatron-LM preprocess_data.py", 1, 46.0, 100.0, 930.0),
        run("jpqwen make data (16 MB prefix)", 1, 10.0, 16.0),
        run("Megatron-LM preprocess_data.py (16 MB prefix)", 1, 21.0, 16.0, 1070.0),
        run("jpqwen make data (1000 MB corpus)", 1, 50.0, 1000.0, 780.0),
    ]
    marginal = {
        "jpqwen make data": 20.0,
        "Megatron-LM preprocess_data.py": 3.2,
        "jpqwen make data (1 worker, 1000 MB minus 100 MB)": 24.0,
    }
    if with_large_megatron:
        runs.append(run("Megatron-LM preprocess_data.py (1000 MB corpus)", 1, 330.0, 1000.0, 950.0))
        marginal["Megatron-LM preprocess_data.py (1 worker, 1000 MB minus 100 MB)"] = 3.2
    return {
        "when": "2026-01-01 00:00 UTC",
        "machine": {"cpus": 2, "processor": "", "python": "3.11", "load_at_start": [0.0, 0.0, 0.0], "memory_gb": 24},
        "corpus": {"path": "corpus.jsonl", "mb": 100.0, "documents": 10000},
        "tokenizer_backend": "fastokens",
        "runs": runs,
        "raw_tokenizer": {
            "fastokens_batch": {"mb_per_s": 77.0, "tokens_per_s": 1, "mb": 8.0},
            "tiktoken": {"mb_per_s": 13.0, "tokens_per_s": 1, "mb": 8.0},
        },
        "marginal_mb_per_cpu_s": marginal,
        "startup_cpu_s": {"jpqwen make data": 9.2, "Megatron-LM preprocess_data.py": 15.8},
    }


def test_bench_data_targets_and_table_with_and_without_the_large_megatron_run(tmp_path):
    import json

    from bench.data import compute_targets, main, markdown

    small_marginal = ">= 10x Megatron per core, start-up excluded (marginal)"  # 100 - 16 MB: noisy
    old_rows = [
        ">= 10x Megatron per core (1 workers, MB per CPU-second)",
        ">= 70% of raw tokenizer, start-up excluded, 1 worker (large minus full corpus)",
        ">= 70% of raw tokenizer, end to end on a 1000 MB corpus (1 worker)",
        "peak memory < 2 GB (process tree)",
    ]
    end_to_end = ">= 10x Megatron per core, end to end on a 1000 MB corpus (1 worker, MB per CPU-second)"
    marginal = ">= 10x Megatron per core, start-up excluded, 1 worker (1000 MB minus 100 MB: large minus full corpus)"

    # with Megatron on the large corpus: both 10x rows at that size, every earlier row kept
    r = _bench_data_result(with_large_megatron=True)
    r["targets"] = compute_targets(r, [1])
    by_target = {t["target"]: t for t in r["targets"]}
    for row in old_rows:
        assert row in by_target, row
    assert small_marginal not in by_target  # the large-minus-full figure replaces it
    assert by_target[end_to_end]["measured"] == f"{(1000 / 50) / (1000 / 330):.2f}x"  # 20 / 3.03 = 6.60x
    assert by_target[end_to_end]["met"] is False
    assert by_target[marginal]["measured"] == "7.50x" and by_target[marginal]["met"] is False
    assert by_target["peak memory < 2 GB (process tree)"]["measured"] == "800 MB"  # ours only
    md = markdown(r)
    assert "| Megatron-LM preprocess_data.py (1000 MB corpus) | 1 | 330.0 | 330.0 | 3.03 |" in md
    assert f"| {end_to_end} | 6.60x | no |" in md
    assert f"| {marginal} | 7.50x | no |" in md
    assert "Megatron-LM preprocess_data.py (1 worker, 1000 MB minus 100 MB) 3.2" in md

    # an older result without it (e.g. --from-json on an earlier data.json): no KeyError, no new rows
    old = _bench_data_result(with_large_megatron=False)
    old["targets"] = compute_targets(old, [1])
    old_targets = [t["target"] for t in old["targets"]]
    assert (
        old_targets == [old_targets[0], small_marginal] + [t for t in by_target if t not in (end_to_end, marginal)][1:]
    )
    assert end_to_end not in markdown(old) and marginal not in markdown(old)
    del old["marginal_mb_per_cpu_s"], old["startup_cpu_s"]  # older still: no marginal figures at all
    src = tmp_path / "old.json"
    src.write_text(json.dumps(old), encoding="utf-8")
    assert main(["--from-json", str(src), "--out", str(tmp_path)]) == 0
    assert "| peak memory < 2 GB (process tree) | 800 MB | yes |" in (tmp_path / "data.md").read_text(encoding="utf-8")


def test_bench_data_large_corpus_at_more_workers_and_gzipped(tmp_path):
    """The large corpus at 2 workers too: its own end-to-end row against Megatron-LM at 2 workers;
    the gzipped run (ours only: Megatron-LM's script reads plain jsonl) is listed but compared with
    nothing, and the 1-worker rows stay as they were."""
    from bench.data import compute_targets, large_name, large_runs, markdown

    r = _bench_data_result(with_large_megatron=True)
    before = {t["target"]: t for t in compute_targets(r, [1])}
    assert large_name("jpqwen make data", 1000.4, 1) == "jpqwen make data (1000 MB corpus)"
    for name, workers, cpu in (
        (large_name("jpqwen make data", 1000, 2), 2, 40.0),
        (large_name("Megatron-LM preprocess_data.py", 1000, 2), 2, 300.0),
        (large_name("jpqwen make data", 1000, 2, gzipped=True), 2, 45.0),
    ):
        r["runs"].append(
            {
                **r["runs"][0],
                "name": name,
                "workers": workers,
                "cpu_seconds": cpu,
                "seconds": cpu,
                "mb": 1000.0,
                "mb_per_cpu_s": round(1000 / cpu, 3),
            }
        )
    assert list(large_runs(r, "jpqwen make data", 2)) == ["1000"]  # not the gzipped run
    assert large_runs(r, "jpqwen make data", 2)["1000"]["cpu_seconds"] == 40.0
    targets = {t["target"]: t for t in compute_targets(r, [1])}
    two = ">= 10x Megatron per core, end to end on a 1000 MB corpus (2 workers, MB per CPU-second)"
    assert targets[two]["measured"] == f"{(1000 / 40) / (1000 / 300):.2f}x" == "7.50x"
    assert {k: v for k, v in targets.items() if k != two} == before
    assert "| jpqwen make data (1000 MB corpus gzipped, 2 workers) | 2 | 45.0 | 45.0 | 22.22 |" in markdown(
        {**r, "targets": list(targets.values())}
    )


def test_bench_data_page_cache_probe_and_user_sys_split(tmp_path):
    from bench.data import compute_targets, markdown, page_cache_probe, run_measured

    probe = page_cache_probe(tmp_path, megabytes=16, idle_s=0)
    assert probe["mb"] == 16 and probe["idle_s"] == 0
    # real writes cost CPU (at least the copy into the page cache), and the probe cleans up after itself
    assert probe["fresh"] > 0 and probe["reused"] > 0
    assert list(tmp_path.iterdir()) == []

    # a child that burns user time only, then one that spends it in the kernel (writes into the page cache)
    busy = run_measured([sys.executable, "-c", "sum(i * i for i in range(3_000_000))"])
    assert busy["user_seconds"] > busy["sys_seconds"]
    assert abs(busy["user_seconds"] + busy["sys_seconds"] - busy["cpu_seconds"]) <= 0.011
    target = tmp_path / "w.bin"
    code = f"b = bytes(8 << 20)\nwith open({str(target)!r}, 'wb') as f:\n    for _ in range(64): f.write(b)"
    writer = run_measured([sys.executable, "-c", code])
    assert target.stat().st_size == 512 << 20 and writer["sys_seconds"] > 0.02
    target.unlink()  # (pytest keeps the tmp dirs of recent sessions)

    r = _bench_data_result(with_large_megatron=False)
    r["runs"][0].update(cpu_seconds=12.5, user_seconds=11.0, sys_seconds=1.5)
    r["machine"]["page_cache_write_cpu_ms_per_mb"] = {"fresh": 2.2, "reused": 0.19, "mb": 1024, "idle_s": 10.0}
    r["targets"] = compute_targets(r, [1])
    md = markdown(r)
    assert "| jpqwen make data | 1 | 12.5 | 12.5 (11.0 + 1.5) | 8.00 |" in md
    assert "| Megatron-LM preprocess_data.py | 1 | 46.0 | 46.0 | 2.17 |" in md  # a row without the split
    assert "costs this machine 2.2 CPU ms per MB after 10 s of quiet and 0.19 right after" in md
