"""Prompt files: every accepted shape, the project's own files, the LoRA template."""

from __future__ import annotations

import json

import pytest

from jpqwen.errors import InputError
from jpqwen.hf.prompts import DEFAULT_TEMPLATE, Prompt, interleave, load_prompts, lora_template


def test_project_prompt_files_load():
    ja = load_prompts("jpqwen/resources/prompts/ja_prompts.json")
    en = load_prompts("jpqwen/resources/prompts/en_prompts.json")
    assert {p.category for p in ja} <= {"completion", "instruction"} and ja
    assert en and all(p.text.strip() for p in en)


def test_shapes(tmp_path):
    f = tmp_path / "p.json"
    f.write_text(json.dumps(["a", "b"]))
    assert load_prompts(f) == [Prompt("a"), Prompt("b")]
    f.write_text(json.dumps({"prompts": ["a", {"prompt": "b", "category": "instruction"}]}))
    assert load_prompts(f) == [Prompt("a"), Prompt("b", "instruction")]
    f.write_text(json.dumps({"completion": ["a"], "instruction": ["b", "c"]}, ensure_ascii=False))
    prompts = load_prompts(f)
    assert [p.category for p in prompts] == ["completion", "instruction", "instruction"]
    assert interleave(prompts, 2) == [Prompt("a"), Prompt("b", "instruction")]
    f.write_text(json.dumps({"chat": ["x"]}))
    with pytest.raises(InputError, match="key 'chat' must be one of completion, instruction"):
        load_prompts(f)
    f.write_text(json.dumps({"completion": ["ok", ""]}))
    with pytest.raises(InputError, match=r"completion\[1\] must be a non-empty string"):
        load_prompts(f)


def test_instruction_prompts_use_the_lora_template(work, write_record):
    p = Prompt("日本の四季について説明してください。", "instruction")
    assert lora_template(work) == DEFAULT_TEMPLATE
    assert p.model_input(lora_template(work)) == "日本の四季について説明してください。\n"
    write_record(work, "lora", {}, {"lora": {"prompt_template": "### 指示:\n{input}\n\n### 応答:\n{output}"}})
    assert p.model_input(lora_template(work)) == "### 指示:\n日本の四季について説明してください。\n\n### 応答:\n"
    assert Prompt("日本の首都は").model_input(lora_template(work)) == "日本の首都は"
