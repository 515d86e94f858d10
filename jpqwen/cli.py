"""The shared command line of every ``pipeline/<stage>.py`` entry.

Every stage takes the same base options::

    --config configs/default.yaml   the preset (env CONFIG)
    --set section.key=value         override one field (repeatable)
    --work-dir DIR                  artifact root (env WORK_DIR, default ./work)
    --force                         redo the stage even if it is up to date

and fails with one readable message instead of a stack trace for errors the
user can act on (:class:`jpqwen.errors.JpqwenError`).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable

from jpqwen.config import load_config
from jpqwen.env import load_dotenv, redact
from jpqwen.errors import JpqwenError
from jpqwen.paths import WorkDir

log = logging.getLogger("jpqwen")

StageFn = Callable[[argparse.Namespace, dict, WorkDir], "int | None"]


def base_parser(stage: str, description: str | None = None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"python -m pipeline.{stage}", description=description)
    p.add_argument(
        "--config",
        default=os.environ.get("CONFIG") or None,
        help="preset YAML (default: configs/default.yaml; env CONFIG)",
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config field, e.g. --set pretrain.max_steps=20 (repeatable)",
    )
    p.add_argument("--work-dir", default=None, help="artifact root (env WORK_DIR; default ./work)")
    p.add_argument(
        "--force",
        action="store_true",
        default=os.environ.get("FORCE", "") not in ("", "0"),
        help="redo this stage even if its outputs are up to date (env FORCE=1)",
    )
    return p


def setup_logging() -> None:
    level = os.environ.get("LOG_LEVEL", "INFO").upper()
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname).1s %(name)s: %(message)s", datefmt="%H:%M:%S", stream=sys.stderr
    )


def stage_main(
    stage: str, run: StageFn, parser: argparse.ArgumentParser | None = None, argv: list[str] | None = None
) -> int:
    """Parse args, load .env + config, run the stage, turn known errors into messages."""
    parser = parser or base_parser(stage)
    args = parser.parse_args(argv)
    setup_logging()
    try:
        load_dotenv()
        cfg = load_config(args.config, args.overrides)
        work = WorkDir.from_env(args.work_dir)
        rc = run(args, cfg, work)
        return int(rc or 0)
    except JpqwenError as exc:
        print(redact(f"jpqwen {stage}: error: {exc}"), file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"jpqwen {stage}: interrupted; finished parts are kept, run it again to resume", file=sys.stderr)
        return 130


def run_module(stage: str, run: StageFn, parser: argparse.ArgumentParser | None = None) -> None:
    sys.exit(stage_main(stage, run, parser))
