"""`make plan`: the fully resolved import / pretrain / lora recipes as YAML, and a short summary.

Runs on a CPU machine and before `make data` / `make import` have run: the
upstream paths are the ones those stages will produce, marked pending.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from jpqwen.io import write_text_atomic
from jpqwen.nemo.environment import Stack
from jpqwen.paths import WorkDir


def run(args: argparse.Namespace, cfg: dict, work: WorkDir) -> int:
    from jpqwen.nemo.recipes import to_yaml
    from jpqwen.nemo.train import build_import, build_lora, build_pretrain

    stack = Stack.detect()
    built = [build_import(cfg, work), build_pretrain(cfg, work, for_plan=True, stack=stack)]
    built.append(build_lora(cfg, work, for_plan=True, stack=stack))
    print(render(built, stack, write_plans(built, work.plans, to_yaml)))
    return 0


def write_plans(built: list, plans_dir: Path, to_yaml) -> dict[str, Path]:
    paths = {}
    for b in built:
        text = f"# jpqwen {b.stage} recipe, fully resolved (nemo_run YamlSerializer)\n" + to_yaml(b.recipe)
        paths[b.stage] = write_text_atomic(plans_dir / f"{b.stage}.yaml", text)
        if b.executor is not None:
            write_text_atomic(plans_dir / f"{b.stage}.executor.yaml", to_yaml(b.executor))
    return paths


def render(built: list, stack: Stack, paths: dict[str, Path]) -> str:
    lines = [f"jpqwen plan  (this environment: {stack.describe()})", ""]
    for b in built:
        head = f"[{b.stage}]  {paths[b.stage]}"
        if b.pending:
            head += f"   (waits for: {', '.join('make ' + p for p in b.pending)})"
        lines.append(head)
        width = max(len(k) for k in b.summary)
        lines += [f"  {k:<{width}}  {v}" for k, v in b.summary.items()]
        if b.stage != "import":
            if b.changes:
                lines.append(f"  {'environment':<{width}}  {len(b.changes)} change(s) from the recipe here:")
                lines += [f"    - {c.describe()}" for c in b.changes]
            else:
                lines.append(f"  {'environment':<{width}}  every fusion kept (Transformer Engine + apex present)")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"
