"""`make demo`: terminal table, and the web page answering in a real headless Chromium."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from jpqwen.cli import stage_main
from jpqwen.demo.stage import run
from pipeline.demo import parser

PROMPT = "日本の首都は"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


def demo_args(work, *extra):
    return ["--work-dir", str(work.root), "--set", "demo.max_new_tokens=8", "--set", "demo.warmup=false", *extra]


def direct_answer(path: Path, prompt: str, max_new_tokens: int = 8, repetition_penalty: float = 1.1) -> str:
    """The stage's greedy continuation computed here, without the demo."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    ids = tok(prompt, return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        out = model.generate(
            **ids,
            do_sample=False,
            max_new_tokens=max_new_tokens,
            repetition_penalty=repetition_penalty,
            pad_token_id=tok.eos_token_id,
        )
    return tok.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True)


def test_terminal_demo_prints_every_stage(upstream, stage_models, tmp_path, capsys):
    out_json = tmp_path / "demo.json"
    assert stage_main("demo", run, parser(), demo_args(upstream, "--prompt", PROMPT, "--json", str(out_json))) == 0
    printed = capsys.readouterr().out
    assert f"▶ {PROMPT}" in printed
    for label in ("Qwen2.5-0.5B (base)", "+ 継続事前学習 (continual)", "+ LoRA (merged)"):
        assert label in printed
    assert "1st token" in printed and "tokens/s" in printed
    results = json.loads(out_json.read_text())
    answers = {a["stage"]: a for a in results[0]["answers"]}
    assert list(answers) == ["base", "continued", "lora_merged"]
    for name, a in answers.items():
        assert a["text"] == direct_answer(stage_models[name], PROMPT), name
        assert a["text"].strip() in " ".join(printed.split())
        assert a["load_s"] > 0 and a["ttft_ms"] > 0 and a["tokens_per_s"] > 0 and a["memory_mb"] > 0


def test_demo_without_export_says_what_to_run(work, capsys):
    assert stage_main("demo", run, parser(), demo_args(work)) == 2
    assert "make export" in capsys.readouterr().err


@pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER),
    reason="needs Debian's chromium + chromium-driver (apt-get install chromium chromium-driver)",
)
def test_web_page_answers_in_a_real_browser(upstream, stage_models, tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    from jpqwen.demo.runner import DemoConfig, StageModels, demo_models
    from jpqwen.demo.web import serve
    from jpqwen.hf.prompts import Prompt

    cfg = DemoConfig(max_new_tokens=8, warmup=False)
    models = StageModels(demo_models(upstream, cfg), cfg)
    app = serve(
        models, [Prompt("富士山は"), Prompt("自己紹介してください。", "instruction")], "127.0.0.1", None, block=False
    )
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1400,1000",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        driver.get(app.local_url)
        wait = WebDriverWait(driver, 60)
        box = wait.until(EC.element_to_be_clickable((By.CSS_SELECTOR, "#prompt textarea")))
        box.clear()
        box.send_keys(PROMPT)
        driver.find_element(By.CSS_SELECTOR, "#generate").click()
        answers = {}
        deadline = time.time() + 90
        for name in ("base", "continued", "lora_merged"):
            area = driver.find_element(By.CSS_SELECTOR, f"#answer-{name} textarea")
            while not area.get_attribute("value") and time.time() < deadline:
                time.sleep(0.3)
            answers[name] = area.get_attribute("value")
        wait.until(lambda d: "tokens/s" in d.find_element(By.CSS_SELECTOR, "#stats-lora_merged").text)
        stats = {n: driver.find_element(By.CSS_SELECTOR, f"#stats-{n}").text for n in answers}
        # a fixed instruction example: one click fills the box and ticks "as an instruction"
        expected = direct_answer(stage_models["lora_merged"], "自己紹介してください。\n")  # default LoRA template
        assert expected != answers["lora_merged"]  # so the page must really change to pass the wait below
        driver.find_element(By.XPATH, "//button[contains(., '指示: 自己紹介してください。')]").click()
        wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#instruction input").is_selected())
        assert (
            driver.find_element(By.CSS_SELECTOR, "#prompt textarea").get_attribute("value") == "自己紹介してください。"
        )
        driver.find_element(By.CSS_SELECTOR, "#generate").click()
        wait.until(
            lambda d: d.find_element(By.CSS_SELECTOR, "#answer-lora_merged textarea").get_attribute("value") == expected
        )
        shot = Path(__file__).resolve().parents[2] / "work" / "test-artifacts" / "demo_page.png"
        shot.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(shot))
        labels = driver.find_element(By.CSS_SELECTOR, "#models").text
    finally:
        driver.quit()
        app.close()
    for name, text in answers.items():
        assert text == direct_answer(stage_models[name], PROMPT), name  # the page shows each stage's real answer
        assert "first token" in stats[name] and "tokens/s" in stats[name]
    assert "+ LoRA (merged)" in labels and "load" in labels
    assert shot.stat().st_size > 10_000
