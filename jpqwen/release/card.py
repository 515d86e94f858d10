"""The model card (README.md) of a handoff package, in Japanese and English.

Everything in it comes from the stage records (lineage, data card, training
settings, eval results, parity reports); nothing is typed by hand, so a card
cannot claim a number the pipeline did not measure. Missing pieces (e.g. no
LoRA stage) are said, not hidden.
"""

from __future__ import annotations

from typing import Any

BASE_MODEL = "Qwen/Qwen2.5-0.5B"
STAGE_NAMES = {
    "base": ("ベースモデル (Qwen2.5-0.5B)", "base model (Qwen2.5-0.5B)"),
    "continued": ("継続事前学習", "continual pretraining"),
    "lora_merged": ("LoRA (マージ済み)", "LoRA (merged)"),
}
# training settings worth a reader's attention, in this order (others are in lineage.json)
HYPERPARAMETERS = (
    "tokens",
    "max_steps",
    "steps",
    "final_step",
    "epochs",
    "seq_length",
    "global_batch_size",
    "micro_batch_size",
    "max_lr",
    "min_lr",
    "lr",
    "warmup_steps",
    "warmup_fraction",
    "weight_decay",
    "grad_clip",
    "replay_weight",
    "tie_embeddings",
    "dim",
    "alpha",
    "dropout",
    "target_modules",
    "dataset",
    "gpus",
)
DATA_FIELDS = (
    "documents_in",
    "documents_kept",
    "rejected_by_filter",
    "duplicates_exact",
    "duplicates_near",
    "quarantined",
    "tokens",
    "chars_per_token",
)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    if isinstance(v, dict):
        return ", ".join(f"{k}: {_fmt(x)}" for k, x in v.items())
    if isinstance(v, list):
        return ", ".join(_fmt(x) for x in v)
    return str(v).replace("|", "\\|")


def _find(tree: Any, key: str) -> Any:
    """First value under ``key`` anywhere in nested dicts (stage records nest settings differently)."""
    if isinstance(tree, dict):
        if key in tree and not isinstance(tree[key], dict):
            return tree[key]
        for v in tree.values():
            found = _find(v, key)
            if found is not None:
                return found
    return None


def hyperparameters(record: dict | None) -> dict[str, Any]:
    if not record:
        return {}
    tree = {"config": record.get("config"), "metrics": record.get("metrics")}
    return {k: v for k in HYPERPARAMETERS if (v := _find(tree, k)) is not None}


def _table(rows: list[tuple[str, Any]], head: tuple[str, str]) -> list[str]:
    return [f"| {head[0]} | {head[1]} |", "|---|---|", *[f"| {k} | {_fmt(v)} |" for k, v in rows]]


def _eval_table(results: dict | None, ja: bool) -> list[str]:
    if not results or not results.get("stages"):
        return ["(評価結果なし: `make eval` が未実行)" if ja else "(no eval results: `make eval` has not run)"]
    head = (
        "| 段階 | 日本語 bpc | 英語 bpc |" if ja else "| stage | Japanese bpc | English bpc |",
        "|---|---:|---:|",
    )
    rows = []
    for name, r in results["stages"].items():
        label = STAGE_NAMES.get(name, (name, name))[0 if ja else 1]
        jb = (r.get("ja") or {}).get("bits_per_char")
        eb = (r.get("en") or {}).get("bits_per_char")
        rows.append(f"| {label} | {jb:.4f} | " + (f"{eb:.4f} |" if eb is not None else "– |"))
    return [*head, *rows]


def _parity_table(parity: dict | None, ja: bool) -> list[str]:
    if not parity:
        return ["(パリティ検証の記録なし)" if ja else "(no parity record)"]
    head = (
        "| モデル | 結果 | 最大 Δlog p (nats) | 許容値 |"
        if ja
        else "| model | result | max Δlog p (nats) | tolerance |",
        "|---|---|---:|---:|",
    )
    rows = [
        f"| {name} | {'PASS' if r.get('passed') else 'FAIL'} | {r.get('max_abs_diff', float('nan')):.3g} | "
        f"{r.get('atol', float('nan')):g} |"
        for name, r in parity.items()
    ]
    return [*head, *rows]


def render_card(info: dict[str, Any]) -> str:
    """README.md text. ``info`` keys: name, model_stage, lineage, architecture, data, hyperparameters,
    eval, parity, created, jpqwen."""
    name, stage = info["name"], info["model_stage"]
    arch = info["architecture"]
    lineage = info["lineage"]
    hp = info.get("hyperparameters") or {}
    data = info.get("data") or {}
    data_rows = [(k, data[k]) for k in DATA_FIELDS if k in data]
    chain_ja = " → ".join(STAGE_NAMES.get(s["stage"], (s["stage"],))[0] for s in lineage)
    chain_en = " → ".join(STAGE_NAMES.get(s["stage"], ("", s["stage"]))[1] for s in lineage)
    load = [
        "```python",
        "from transformers import AutoModelForCausalLM, AutoTokenizer",
        "",
        f'model = AutoModelForCausalLM.from_pretrained("./{name}", torch_dtype="auto")',
        f'tokenizer = AutoTokenizer.from_pretrained("./{name}")',
        'inputs = tokenizer("日本の首都は", return_tensors="pt")',
        "print(tokenizer.decode(model.generate(**inputs, max_new_tokens=32)[0]))",
        "```",
    ]
    arch_rows = [
        ("parameters", arch.get("parameters")),
        ("layers / hidden / heads / kv heads", arch.get("shape")),
        ("vocabulary", arch.get("vocab_size")),
        ("tie_word_embeddings", arch.get("tie_word_embeddings")),
        ("dtype (weights)", arch.get("dtype")),
        ("max_position_embeddings", arch.get("max_position_embeddings")),
    ]
    lines = [
        "---",
        "license: apache-2.0",
        "language:",
        "- ja",
        "- en",
        f"base_model: {BASE_MODEL}",
        "library_name: transformers",
        "pipeline_tag: text-generation",
        "tags:",
        "- qwen2",
        "- japanese",
        "- continual-pretraining",
        "- nemo",
        "---",
        "",
        f"# {name}",
        "",
        f"Qwen2.5-0.5B に日本語を教えたモデル / Qwen2.5-0.5B taught Japanese. Stage: **{stage}**. "
        f"Built by jpqwen {info.get('jpqwen', '')} on {info.get('created', '')}.",
        "",
        "## 日本語",
        "",
        "### 系譜",
        "",
        f"{chain_ja}。Qwen2.5-0.5B (ベース) を LLM-jp コーパス v3 の日本語 Wikipedia で継続事前学習し"
        + (
            "、さらに LoRA で日本語の指示データに適応させ、LoRA をベースの重みにマージしました。"
            if stage == "lora_merged"
            else "ました。"
        )
        + " NeMo 2.0 で学習し、Hugging Face 形式へ変換しています。各段階の記録は `lineage.json` にあります。",
        "",
        "### 学習データ",
        "",
        "LLM-jp Corpus v3 `ja/ja_wiki` (日本語 Wikipedia, CC BY-SA 4.0) を品質フィルタと重複除去にかけたもの"
        "と、忘却を抑える英語の再生データ。",
        "",
        *(_table(data_rows, ("項目", "値")) if data_rows else ["(データカードなし)"]),
        "",
        "### ハイパーパラメータ",
        "",
        *_hp_tables(hp, ja=True),
        "",
        "### 評価",
        "",
        "文字あたりビット数 (bpc、低いほど良い、トークナイザーに依存しない指標): 日本語は `make data` の"
        "検証用文書、英語は英語サンプル (忘却の確認)。",
        "",
        *_eval_table(info.get("eval"), ja=True),
        "",
        "### 変換の検証",
        "",
        "Hugging Face 形式の出力と NeMo のモデルについて、固定の日本語プロンプトでの次トークン対数確率を比較し"
        "ました (各位置の上位 k トークン、float32)。",
        "",
        *_parity_table(info.get("parity"), ja=True),
        "",
        "### 使い方",
        "",
        *load,
        "",
        "### 想定用途",
        "",
        "日本語の SFT / DPO の出発点、日本語継続事前学習の研究・教育、小さなモデルでの実験。",
        "",
        "### 限界",
        "",
        "- 5 億パラメータの小さなモデルです。事実の誤り (もっともらしい作り話) が多く、推論・計算・長い文脈の"
        "理解は弱いです。",
        "- 日本語の学習データは Wikipedia だけなので、百科事典的な文体に偏り、会話・口語・専門分野は苦手です。"
        "Wikipedia の偏りも受け継いでいます。",
        "- 安全性のための調整 (RLHF など) はしていません。有害・偏った出力があり得ます。",
        "- 継続事前学習は短い系列で行いました。長い文脈での品質は確認していません。",
        "- 英語の能力は下がっている可能性があります (上の英語 bpc を参照)。",
        "- 医療・法律・金融など重大な判断には使わないでください。",
        "",
        "### ライセンス",
        "",
        "- ベースモデル Qwen2.5-0.5B: Apache License 2.0。このモデルの重みも Apache-2.0 で配布します。",
        "- 学習データ: 日本語 Wikipedia (LLM-jp Corpus v3 経由) は CC BY-SA 4.0。学習済みの重みがその"
        "二次的著作物にあたるかは法域により解釈が分かれます。生成文が学習テキストを再現した場合は CC BY-SA の"
        "表示義務に従ってください。",
        "- LoRA の指示データは、そのデータ自身のライセンスに従います (`lineage.json` の dataset)。",
        "",
        "## English",
        "",
        "### Lineage",
        "",
        f"{chain_en}. Qwen2.5-0.5B (base) was continually pretrained on Japanese Wikipedia from LLM-jp Corpus v3"
        + (
            ", then adapted to Japanese instructions with LoRA, and the LoRA weights were merged into the base."
            if stage == "lora_merged"
            else "."
        )
        + " Trained with NeMo 2.0 and converted to Hugging Face format; each stage's record is in `lineage.json`.",
        "",
        "### Training data",
        "",
        "LLM-jp Corpus v3 `ja/ja_wiki` (Japanese Wikipedia, CC BY-SA 4.0) after quality filters and deduplication,"
        " plus English replay data against forgetting.",
        "",
        *(_table(data_rows, ("field", "value")) if data_rows else ["(no data card)"]),
        "",
        "### Hyperparameters",
        "",
        *_hp_tables(hp, ja=False),
        "",
        "### Architecture",
        "",
        *_table([(k, v) for k, v in arch_rows if v is not None], ("field", "value")),
        "",
        "### Evaluation",
        "",
        "Bits per character (bpc; lower is better; independent of the tokenizer): Japanese on the held-out"
        " documents of `make data`, English on the English sample (forgetting).",
        "",
        *_eval_table(info.get("eval"), ja=False),
        "",
        "### Conversion check",
        "",
        "The Hugging Face export and the NeMo model were compared on fixed Japanese prompts: next-token"
        " log-probabilities over the top-k tokens at every position, float32 forwards on both sides.",
        "",
        *_parity_table(info.get("parity"), ja=False),
        "",
        "### How to use",
        "",
        *load,
        "",
        "Integrity: `sha256sum -c SHA256SUMS` (also `manifest.json`).",
        "",
        "### Intended use",
        "",
        "A starting point for Japanese SFT / DPO, research and teaching on continual pretraining, small-model"
        " experiments.",
        "",
        "### Limitations",
        "",
        "- A 0.5B-parameter model: it states falsehoods fluently and is weak at reasoning, arithmetic and long"
        " contexts.",
        "- Its Japanese training text is Wikipedia only: encyclopedic style, weak at conversation, colloquial"
        " language and specialist domains; it inherits Wikipedia's biases.",
        "- No safety tuning (no RLHF): outputs may be harmful or biased.",
        "- Continual pretraining used short sequences; long-context quality was not measured.",
        "- English ability may have declined (see the English bpc above).",
        "- Do not use it for medical, legal, financial or other high-stakes decisions.",
        "",
        "### Licences",
        "",
        "- Base model Qwen2.5-0.5B: Apache License 2.0; these weights are released under Apache-2.0 as well.",
        "- Training data: Japanese Wikipedia (via LLM-jp Corpus v3) is CC BY-SA 4.0. Whether trained weights are"
        " a derivative work is unsettled and differs by jurisdiction; where generated text reproduces training"
        " text, follow CC BY-SA's attribution terms.",
        "- The LoRA instruction data is under its own licence (see the dataset in `lineage.json`).",
        "",
    ]
    return "\n".join(lines)


def _hp_tables(hp: dict[str, dict[str, Any]], ja: bool) -> list[str]:
    out: list[str] = []
    for stage, values in hp.items():
        label = STAGE_NAMES.get(stage, (stage, stage))[0 if ja else 1]
        out += [f"**{label}**", ""]
        out += _table(list(values.items()), ("項目", "値") if ja else ("setting", "value")) if values else ["–"]
        out.append("")
    if not out:
        return ["(学習の記録なし)" if ja else "(no training records)"]
    return out[:-1]
