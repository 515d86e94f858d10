"""Say what this environment can run.

make all            (calls it with --require-gpu to decide how far to go)
python -m pipeline.doctor [--require-gpu] [--quiet]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys

from jpqwen.env import load_dotenv
from jpqwen.errors import NeedsGPUError
from jpqwen.gpu import require_gpu, stack_report
from jpqwen.monitoring import wandb_settings
from jpqwen.paths import WorkDir


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m pipeline.doctor", description=__doc__)
    p.add_argument("--require-gpu", action="store_true", help="exit 3 unless a CUDA GPU and NeMo are here")
    p.add_argument("--quiet", action="store_true", help="print only problems")
    p.add_argument("--stage", default="import/pretrain/lora", help="the stage that needs the GPU (for the message)")
    args = p.parse_args(argv)
    env_file = load_dotenv()
    work = WorkDir.from_env()
    if not args.quiet:
        report = stack_report()
        print(f"python             {sys.version.split()[0]} on {platform.platform()}")
        print(f"WORK_DIR           {work.root}")
        print(f".env               {env_file or 'not found (copy .env.example to .env)'}")
        print(f"monitoring         {wandb_settings(work, 'doctor').describe()}")
        print(f"in docker          {os.path.exists('/.dockerenv')}")
        for key, value in report.items():
            print(f"{key:<19}{value}")
    if args.require_gpu:
        try:
            require_gpu(args.stage)
        except NeedsGPUError as exc:
            print(f"jpqwen: {exc}", file=sys.stderr)
            return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
