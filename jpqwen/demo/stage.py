"""`make demo` / `make demo-web`: the exported stages side by side."""

from __future__ import annotations

import json
import logging

from jpqwen.config import section
from jpqwen.paths import WorkDir

log = logging.getLogger("jpqwen.demo")


def run(args, cfg: dict, work: WorkDir) -> int:
    from jpqwen.demo.runner import DemoConfig, StageModels, demo_models, fixed_prompts
    from jpqwen.hf.prompts import Prompt, interleave, lora_template

    dcfg = section(cfg, "demo", DemoConfig)
    if args.host:
        dcfg.host = args.host
    if args.port:
        dcfg.port = args.port
    if args.stages:
        dcfg.stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    found = demo_models(work, dcfg)
    template = lora_template(work)
    if args.prompt:
        prompts = [Prompt(args.prompt, "instruction" if args.instruction else "completion")]
    else:
        prompts = fixed_prompts(dcfg)
    models = StageModels(found, dcfg)
    if args.web:
        from jpqwen.demo.web import serve

        print(f"jpqwen demo: http://{dcfg.host}:{dcfg.port}  (Ctrl-C to stop)", flush=True)
        serve(models, prompts, dcfg.host, dcfg.port, block=True, template=template)
        return 0
    from jpqwen.demo.terminal import run_terminal

    chosen = prompts if args.prompt else interleave(prompts, dcfg.max_prompts)
    results = run_terminal(models, chosen, template)
    if args.json:
        from jpqwen.io import write_json_atomic

        write_json_atomic(args.json, results)
        log.info("demo results -> %s", args.json)
    else:
        log.debug("%s", json.dumps(results, ensure_ascii=False))
    return 0
