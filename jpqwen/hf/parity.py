"""Export parity: does an exported HF model compute what its source model computes?

The check feeds the same token ids (fixed Japanese prompts, tokenized once by
the reference's tokenizer) to a *reference* log-prob provider and to the
*candidate* HF directory, and compares the next-token log-probabilities at
every position, over the reference's top-k tokens there (the tokens that carry
the probability mass; far-tail log-probs are numerically noisy and irrelevant).

- Reference on the GPU: the NeMo checkpoint run through NeMo/Megatron's own
  forward (:mod:`jpqwen.release.nemo_reference`). In tests on a CPU: a HF model.
- Tolerance: both sides compute in float32 by default (``export.parity_dtype``)
  from the same bf16-stored weights, so only kernel order differs (Megatron's
  fused kernels vs PyTorch SDPA): expected max abs differences are ~1e-4..1e-2
  nats. The default ``atol`` 0.05 nats sits well above that and far below what
  a wrong tensor does (one perturbed tensor moves top-k log-probs by 0.1..5
  nats, see tests/hf/test_parity.py). Computing in bfloat16 on both sides
  needs about 0.3 nats (bf16 has 8 mantissa bits; logits of magnitude ~20 round
  by ~0.06 each, across 24 layers).

Beside the numbers, :func:`check_consistency` compares the architecture fields
of the config, ``tie_word_embeddings`` (and that an untied model really stores
``lm_head.weight``: otherwise transformers silently initialises it at random),
the tokenizer (same vocabulary, same special tokens, same ids on the prompts)
and the generation config.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from jpqwen.errors import JpqwenError

# Config fields that define the computation; a mismatch means a broken export.
ARCH_FIELDS = (
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "rope_theta",
    "rms_norm_eps",
    "vocab_size",
    "hidden_act",
)


class ParityError(JpqwenError):
    """The exported model does not reproduce its source model."""

    exit_code = 4


class LogProbProvider(Protocol):
    """Something that gives next-token log-probs for a sequence of token ids."""

    name: str
    tokenizer: Any  # a transformers tokenizer

    def config_view(self) -> dict[str, Any]:
        """Architecture fields under their Hugging Face names (see ARCH_FIELDS) + tie_word_embeddings."""

    def logprobs(self, token_ids: list[int]) -> Any:
        """float32 tensor [len(token_ids), vocab]: log-softmax of the logits at each position."""


class HFLogProbs:
    """Log-probs from a Hugging Face directory (the candidate; the reference in CPU tests)."""

    def __init__(self, path: str | Path, device: str = "auto", dtype: str = "float32"):
        from jpqwen.hf.models import load_model

        self.loaded = load_model(path, device=device, dtype=dtype)
        self.name = f"hf:{Path(path).name}"
        self.tokenizer = self.loaded.tokenizer

    def config_view(self) -> dict[str, Any]:
        return self.loaded.model.config.to_dict()

    def logprobs(self, token_ids: list[int]):
        import torch

        ids = torch.tensor([token_ids], device=self.loaded.device)
        with torch.inference_mode():
            logits = self.loaded.model(input_ids=ids).logits[0]
        return logits.float().log_softmax(-1).cpu()


@dataclass
class PromptParity:
    prompt: str
    tokens: int
    max_abs_diff: float  # nats, over the reference's top-k at every position
    mean_abs_diff: float
    top1_agreement: float  # fraction of positions where both argmaxes agree
    worst_position: int
    worst_token_id: int
    worst_token: str
    worst_reference_logprob: float
    worst_candidate_logprob: float


@dataclass
class ConsistencyCheck:
    check: str
    ok: bool
    detail: str


@dataclass
class ParityReport:
    reference: str
    candidate: str
    dtype: str
    top_k: int
    atol: float
    prompts: list[PromptParity] = field(default_factory=list)
    consistency: list[ConsistencyCheck] = field(default_factory=list)

    @property
    def max_abs_diff(self) -> float:
        return max((p.max_abs_diff for p in self.prompts), default=math.inf)

    @property
    def logprobs_ok(self) -> bool:
        return bool(self.prompts) and self.max_abs_diff <= self.atol

    @property
    def passed(self) -> bool:
        return self.logprobs_ok and all(c.ok for c in self.consistency)

    def worst(self) -> PromptParity | None:
        return max(self.prompts, key=lambda p: p.max_abs_diff, default=None)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(passed=self.passed, logprobs_ok=self.logprobs_ok, max_abs_diff=self.max_abs_diff)
        return d

    def summary(self) -> str:
        """One paragraph a person can act on: what failed, where, by how much."""
        lines = [
            f"parity {self.candidate} vs {self.reference}: "
            f"{'PASS' if self.passed else 'FAIL'} (max |Δ log p| = {self.max_abs_diff:.3g} nats over top-{self.top_k}, "
            f"tolerance {self.atol:g}, {self.dtype})"
        ]
        w = self.worst()
        if w is not None and not self.logprobs_ok:
            lines.append(
                f"  worst: prompt {w.prompt!r} position {w.worst_position}, token {w.worst_token!r} "
                f"(id {w.worst_token_id}): reference {w.worst_reference_logprob:.4f}, "
                f"candidate {w.worst_candidate_logprob:.4f}; top-1 agreement {w.top1_agreement:.0%}"
            )
        lines += [f"  {c.check}: {c.detail}" for c in self.consistency if not c.ok]
        return "\n".join(lines)


def compare_logprobs(
    reference: LogProbProvider, candidate: LogProbProvider, prompts: list[str], top_k: int = 10
) -> list[PromptParity]:
    """Per-prompt differences of next-token log-probs (token ids from the reference tokenizer)."""
    results = []
    for prompt in prompts:
        ids = reference.tokenizer(prompt, add_special_tokens=False)["input_ids"]
        if not ids:
            raise JpqwenError(f"parity prompt {prompt!r} tokenizes to nothing")
        ref = reference.logprobs(ids)
        cand = candidate.logprobs(ids)
        vocab = min(ref.shape[-1], cand.shape[-1])  # Megatron may pad the vocab; padded ids are never real tokens
        ref, cand = ref[:, :vocab], cand[:, :vocab]
        top = ref.topk(min(top_k, vocab), dim=-1).indices
        diff = (ref.gather(-1, top) - cand.gather(-1, top)).abs()
        flat = int(diff.argmax())
        pos, k = divmod(flat, diff.shape[1])
        tok = int(top[pos, k])
        results.append(
            PromptParity(
                prompt=prompt,
                tokens=len(ids),
                max_abs_diff=float(diff.max()),
                mean_abs_diff=float(diff.mean()),
                top1_agreement=float((ref.argmax(-1) == cand.argmax(-1)).float().mean()),
                worst_position=pos,
                worst_token_id=tok,
                worst_token=reference.tokenizer.decode([tok]),
                worst_reference_logprob=float(ref[pos, tok]),
                worst_candidate_logprob=float(cand[pos, tok]),
            )
        )
    return results


def check_consistency(
    reference: LogProbProvider, candidate_dir: str | Path, prompts: list[str]
) -> list[ConsistencyCheck]:
    """Config, tied embeddings, tokenizer and generation config of the candidate vs the reference."""
    from transformers import AutoConfig, AutoTokenizer

    cdir = Path(candidate_dir)
    checks: list[ConsistencyCheck] = []
    ref_cfg = reference.config_view()
    cand_cfg = AutoConfig.from_pretrained(cdir).to_dict()

    bad = []
    for key in ARCH_FIELDS:
        a, b = arch_value(ref_cfg, key), arch_value(cand_cfg, key)
        if a is None:
            continue
        same = math.isclose(a, b, rel_tol=1e-6) if isinstance(a, float) and isinstance(b, (int, float)) else a == b
        if not same:
            bad.append(f"{key}: reference {a!r}, candidate {b!r}")
    checks.append(ConsistencyCheck("config", not bad, "; ".join(bad) or "architecture fields match"))

    ref_tie = bool(ref_cfg.get("tie_word_embeddings", False))
    cand_tie = bool(cand_cfg.get("tie_word_embeddings", False))
    stored = _stored_tensor_names(cdir)
    if not cand_tie and "lm_head.weight" not in stored:
        checks.append(
            ConsistencyCheck(
                "tie_word_embeddings",
                False,
                "config says untied but the weights have no lm_head.weight (transformers would initialise it randomly)",
            )
        )
    else:
        # A different flag is not wrong by itself: NeMo's importer writes an untied copy of a tied model (its
        # output layer = the embedding). Whether the two compute the same is what the log-prob check decides.
        detail = f"tie_word_embeddings={cand_tie}" + (
            " on both sides" if ref_tie == cand_tie else f" (reference: {ref_tie}; the log-probs decide)"
        )
        checks.append(ConsistencyCheck("tie_word_embeddings", True, detail))

    ctok = AutoTokenizer.from_pretrained(cdir)
    rtok = reference.tokenizer
    problems = []
    if ctok.get_vocab() != rtok.get_vocab():
        problems.append(f"vocabulary differs ({len(ctok)} vs reference {len(rtok)} tokens)")
    for attr in ("eos_token", "pad_token", "bos_token"):
        if getattr(ctok, attr) != getattr(rtok, attr):
            problems.append(f"{attr} {getattr(ctok, attr)!r} vs reference {getattr(rtok, attr)!r}")
    for prompt in prompts:
        if ctok(prompt, add_special_tokens=False)["input_ids"] != rtok(prompt, add_special_tokens=False)["input_ids"]:
            problems.append(f"different token ids for prompt {prompt!r}")
            break
    if len(ctok) > int(cand_cfg.get("vocab_size", 0)):
        problems.append(f"tokenizer has {len(ctok)} tokens but config vocab_size is {cand_cfg.get('vocab_size')}")
    checks.append(ConsistencyCheck("tokenizer", not problems, "; ".join(problems) or f"{len(ctok)} tokens, same ids"))

    gen_path = cdir / "generation_config.json"
    if not gen_path.is_file():
        checks.append(ConsistencyCheck("generation_config", False, f"{gen_path} is missing"))
    else:
        gen = json.loads(gen_path.read_text(encoding="utf-8"))
        eos = gen.get("eos_token_id")
        eos_ids = [eos] if isinstance(eos, int) else list(eos or [])
        ok = ctok.eos_token_id in eos_ids
        checks.append(
            ConsistencyCheck(
                "generation_config",
                ok,
                f"eos_token_id {eos!r}" + ("" if ok else f" does not include the tokenizer's eos {ctok.eos_token_id}"),
            )
        )
    return checks


def arch_value(cfg: dict[str, Any], key: str) -> Any:
    """A config field, also where transformers 5 moved it (``rope_theta`` -> ``rope_parameters``)."""
    if cfg.get(key) is not None:
        return cfg[key]
    if key == "rope_theta":
        return (cfg.get("rope_parameters") or {}).get("rope_theta")
    return None


def verify_export(
    reference: LogProbProvider,
    candidate_dir: str | Path,
    prompts: list[str],
    top_k: int = 10,
    atol: float = 0.05,
    device: str = "auto",
    dtype: str = "float32",
) -> ParityReport:
    """Compare ``candidate_dir`` against ``reference``; the report says PASS/FAIL and why."""
    candidate = HFLogProbs(candidate_dir, device=device, dtype=dtype)
    report = ParityReport(reference=reference.name, candidate=str(candidate_dir), dtype=dtype, top_k=top_k, atol=atol)
    report.consistency = check_consistency(reference, candidate_dir, prompts)
    report.prompts = compare_logprobs(reference, candidate, prompts, top_k=top_k)
    del candidate
    return report


def _stored_tensor_names(model_dir: Path) -> set[str]:
    """Names of the tensors saved in a HF directory (safetensors headers; index if sharded)."""
    index = model_dir / "model.safetensors.index.json"
    if index.is_file():
        return set(json.loads(index.read_text(encoding="utf-8"))["weight_map"])
    from safetensors import safe_open

    names: set[str] = set()
    for f in model_dir.glob("*.safetensors"):
        with safe_open(str(f), framework="pt") as h:
            names.update(h.keys())
    return names


def save_reference(
    path: str | Path, name: str, dtype: str, config_view: dict, tokenizer, records: list[dict[str, Any]]
) -> Path:
    """Save a reference for :class:`PrecomputedLogProbs`.

    ``records``: ``{"prompt", "token_ids", "logprobs"}`` with logprobs a float32 tensor [len, vocab].
    The tokenizer is saved beside it (``<path>.tokenizer/``).
    """
    import torch

    path = Path(path)
    tok_dir = path.with_suffix(".tokenizer")
    tokenizer.save_pretrained(tok_dir)
    payload = {"name": name, "dtype": dtype, "config_view": config_view, "tokenizer_dir": str(tok_dir)}
    torch.save({**payload, "records": records}, path)
    return path


class PrecomputedLogProbs:
    """A reference computed in another process (the NeMo worker) and saved with ``torch.save``."""

    def __init__(self, path: str | Path):
        import torch
        from transformers import AutoTokenizer

        data = torch.load(path, map_location="cpu", weights_only=False)
        self.name = data["name"]
        self.dtype = data.get("dtype", "?")
        self._config = data["config_view"]
        self.tokenizer = AutoTokenizer.from_pretrained(data["tokenizer_dir"])
        self._by_ids = {tuple(r["token_ids"]): r["logprobs"] for r in data["records"]}

    def config_view(self) -> dict[str, Any]:
        return dict(self._config)

    def logprobs(self, token_ids: list[int]):
        try:
            return self._by_ids[tuple(token_ids)]
        except KeyError:
            raise JpqwenError(
                f"the saved reference has no log-probs for these {len(token_ids)} token ids "
                "(were the parity prompts changed after it was computed?)"
            ) from None
