"""make demo   |   python -m pipeline.demo --config configs/default.yaml [--web] [--prompt 日本の首都は]

The presenter's demo: fixed Japanese prompts through every exported stage
(base, continual pretraining, LoRA merged) side by side, with each model's load
time, time to first token, tokens/s and memory. Terminal mode prints a table
and the answers; --web serves a page (Gradio) with a prompt box and one answer
box per stage (the compose `demo` service runs it on port 7860). On a GPU it
decodes with a static KV cache and a compiled step (see bench/demo.py).
"""

from jpqwen.cli import base_parser, run_module
from jpqwen.demo.stage import run


def parser():
    p = base_parser("demo", __doc__)
    p.add_argument("--web", action="store_true", help="serve the web page instead of printing to the terminal")
    p.add_argument("--host", default=None, help="web: address to listen on (default demo.host, 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="web: TCP port (default demo.port, 7860)")
    p.add_argument("--prompt", default=None, help="one prompt instead of the fixed prompts file")
    p.add_argument(
        "--instruction", action="store_true", help="with --prompt: wrap it in the LoRA prompt template (an instruction)"
    )
    p.add_argument("--stages", default=None, help="comma-separated stages to load, e.g. base,continued")
    p.add_argument("--json", default=None, metavar="PATH", help="terminal: also write the answers + timings here")
    return p


if __name__ == "__main__":
    run_module("demo", run, parser())
