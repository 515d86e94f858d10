"""Where the milliseconds of a NeMo continual-pretraining step go (torch.profiler).

Builds the project's own pretraining recipe exactly as ``make pretrain`` does
(``jpqwen.nemo.train.build_pretrain``: same config, data, restore, environment
changes), then adds a profiling callback (bench/gpu/profiler_callback.py), runs
it in this process (NeMo-Run ``direct=True``, one GPU) in a scratch run
directory and writes the per-category GPU time of one step plus the top kernels.
Needs the data and import stages done in WORK_DIR.

    python -m bench.gpu.profile_pretrain --config bench/gpu/chain.yaml --steps 8 --out profile.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True, help="preset YAML (as for make pretrain)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="config override")
    p.add_argument("--steps", type=int, default=8, help="training steps in all (profiled: the last --profile-steps)")
    p.add_argument("--profile-steps", type=int, default=2, help="steps inside the profiler window")
    p.add_argument("--out", type=Path, required=True, help="JSON result")
    args = p.parse_args()

    import nemo_run as run

    from jpqwen.config import load_config
    from jpqwen.nemo.train import build_pretrain
    from jpqwen.paths import WorkDir

    work = WorkDir.from_env()
    cfg = load_config(args.config, [*args.overrides, f"pretrain.max_steps={args.steps}"])
    built = build_pretrain(cfg, work)
    recipe = built.recipe
    s = built.stage_config["pretrain"]
    # a scratch run directory: never the chain's run (whose checkpoints AutoResume would pick up)
    scratch = work.root / "bench-profile" / time.strftime("%Y%m%dT%H%M%S")
    recipe.log.log_dir = str(scratch)  # (its one checkpoint and validation come at the last step, after the window)
    from bench.gpu.profiler_callback import TorchProfilerCallback

    start = max(1, args.steps - args.profile_steps - 1)
    recipe.trainer.callbacks = [
        *(recipe.trainer.callbacks or []),
        run.Config(
            TorchProfilerCallback,
            out=str(args.out),
            start=start,
            steps=args.profile_steps,
            tokens_per_step=s.global_batch_size * s.seq_length,
        ),
    ]
    print(f"profile: {args.steps} steps, profiling steps {start}..{start + args.profile_steps - 1}; run dir {scratch}")
    for ch in built.changes:
        print(f"profile: environment: {ch.describe()}")
    run.run(recipe, direct=True)
    result = json.loads(args.out.read_text(encoding="utf-8"))
    result.update(
        {
            "config": args.config,
            "overrides": args.overrides,
            "micro_batch_size": s.micro_batch_size,
            "global_batch_size": s.global_batch_size,
            "seq_length": s.seq_length,
            "tie_embeddings": s.tie_embeddings,
            "environment_changes": [c.describe() for c in built.changes],
        }
    )
    args.out.write_text(json.dumps(result, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
