"""Web mode: a Gradio page with a prompt box, a button and one answer box per stage.

The stages answer one after another (one GPU); the page shows each answer as
soon as its stage has finished, with that stage's time to first token,
tokens/s and memory underneath. Element ids (for people and the browser test):
``#prompt`` (textbox), ``#generate`` (button), ``#answer-<stage>`` and
``#stats-<stage>`` per stage, ``#models`` (load times).
"""

from __future__ import annotations

import os
from typing import Any


def _stats_md(a: dict[str, Any]) -> str:
    return (
        f"first token **{a['ttft_ms']:.0f} ms** · **{a['tokens_per_s']:.1f}** tokens/s · "
        f"{a['new_tokens']} tokens · {a['memory_mb']:,.0f} MiB {a['memory_kind']} · {a['decoding']} decoding"
    )


def _models_md(models) -> str:
    rows = ["| stage | load | warm-up | weights |", "|---|---:|---:|---:|"]
    for s in models.stages.values():
        rows.append(f"| {s.label} | {s.load_seconds:.2f} s | {s.warmup_seconds:.2f} s | {s.weights_mb:,.0f} MiB |")
    return "\n".join(rows)


def build_app(models, prompts: list, template: str = "{input}\n{output}"):
    """The Gradio Blocks app (not launched). ``prompts``: [jpqwen.hf.prompts.Prompt] shown as examples."""
    from jpqwen.hf.prompts import Prompt

    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no phoning home from an offline box
    import gradio as gr

    names = list(models.stages)
    with gr.Blocks(title="jpqwen demo") as app:
        gr.Markdown(
            "# jpqwen: Qwen2.5-0.5B が日本語を学ぶ\n"
            "同じプロンプトを各段階のモデルに入力し、並べて比べます (貪欲デコード)。 / "
            "The same prompt through each stage, side by side (greedy decoding)."
        )
        prompt = gr.Textbox(
            label="プロンプト / Prompt", value=prompts[0].text if prompts else "", lines=2, elem_id="prompt"
        )
        instruction = gr.Checkbox(
            label="指示として入力 (LoRA のプロンプト形式) / as an instruction (LoRA prompt template)",
            value=bool(prompts) and prompts[0].category == "instruction",
            elem_id="instruction",
        )
        button = gr.Button("生成 / Generate", variant="primary", elem_id="generate")
        if prompts:
            gr.Examples(
                examples=[[p.text, p.category == "instruction"] for p in prompts],
                inputs=[prompt, instruction],
                example_labels=[f"{'指示' if p.category == 'instruction' else '続き'}: {p.text}" for p in prompts],
                label="固定プロンプト (続き = そのまま続ける / 指示 = LoRA 形式) / Fixed prompts",
            )
        answers, stats = [], []
        with gr.Row():
            for name in names:
                with gr.Column():
                    answers.append(
                        gr.Textbox(
                            label=models.stages[name].label,
                            lines=8,
                            interactive=False,
                            elem_id=f"answer-{name}",
                        )
                    )
                    stats.append(gr.Markdown("", elem_id=f"stats-{name}"))
        gr.Markdown(_models_md(models), elem_id="models")

        def generate(text: str, as_instruction: bool):
            model_input = Prompt(text, "instruction" if as_instruction else "completion").model_input(template)
            texts = [""] * len(names)
            infos = ["…"] * len(names)
            yield [*texts, *infos]  # clear the previous answers at once
            for i, name in enumerate(names):
                a = models.answer(name, model_input)
                texts[i], infos[i] = a["text"], _stats_md(a)
                yield [*texts, *infos]

        button.click(generate, inputs=[prompt, instruction], outputs=[*answers, *stats], concurrency_limit=1)
        prompt.submit(generate, inputs=[prompt, instruction], outputs=[*answers, *stats], concurrency_limit=1)
    return app


def serve(models, prompts: list, host: str, port: int | None, block: bool = True, template: str = "{input}\n{output}"):
    """Launch the page; ``block=False`` returns the running app (tests), else serves until interrupted."""
    app = build_app(models, prompts, template)
    app.queue(default_concurrency_limit=1)
    app.launch(
        server_name=host,
        server_port=port,
        prevent_thread_lock=not block,
        quiet=not block,
        show_error=True,
        inbrowser=False,
        share=False,
        ssr_mode=False,
    )
    return app
