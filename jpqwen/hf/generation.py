"""Greedy generation with timings: time to first token, decode tokens/s, memory.

Two decoding paths, both through ``model.generate`` (transformers 4.51 and 5.x):

- ``plain``: a dynamic KV cache, every step launched eagerly from Python. This
  is "plain HF generate" (~47 tokens/s for Qwen2.5-0.5B on an A100 per the
  Qwen2.5 speed benchmark).
- ``static``: one pre-allocated :class:`transformers.StaticCache` reused across
  prompts (fixed shapes), which lets ``generate`` compile the decode step with
  ``torch.compile`` (fullgraph, mode "reduce-overhead" = CUDA graphs) on CUDA.
  The first calls compile (seconds); :func:`warm_up` pays that once at load.
  On a CPU, generate does not compile and the static cache only fixes shapes.

Timings come from a streamer that stamps each new token as generate hands it
over (generate copies it to the host, so the GPU has finished it). On
transformers 5.x generate may report a token one step late (its deferred stop
check), so there the time to first token includes up to one decode step: a
conservative number.
"""

from __future__ import annotations

import inspect
import time
from dataclasses import asdict, dataclass, field
from typing import Any

DECODING_MODES = ("plain", "static")


class _TokenClock:
    """A ``BaseStreamer``-compatible object that records when each new token arrives."""

    def __init__(self, device):
        self.device = device
        self.prompt_seen = False
        self.stamps: list[float] = []

    def put(self, value) -> None:
        if not self.prompt_seen:  # generate first puts the prompt ids
            self.prompt_seen = True
            return
        n = int(value.numel()) if hasattr(value, "numel") else 1
        now = time.perf_counter()
        self.stamps.extend([now] * n)

    def end(self) -> None:
        pass


@dataclass
class Generation:
    prompt: str
    text: str  # the continuation only
    prompt_tokens: int
    new_tokens: int
    ttft_s: float  # prompt in -> first new token out
    decode_tokens_per_s: float  # new tokens after the first / time after the first
    total_s: float
    peak_memory_mb: float | None = None  # CUDA peak allocated during this call (None on CPU)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Decoder:
    """Greedy decoding for one loaded model, with the chosen path."""

    loaded: Any  # jpqwen.hf.models.LoadedModel
    mode: str = "plain"
    max_new_tokens: int = 64
    max_cache_tokens: int = 2048  # static cache length: prompt + new tokens must fit
    repetition_penalty: float = 1.0
    _cache: Any = field(default=None, repr=False)

    def __post_init__(self):
        if self.mode not in DECODING_MODES:
            from jpqwen.errors import ConfigError

            raise ConfigError(f"decoding mode {self.mode!r} is not one of {', '.join(DECODING_MODES)}")
        if self.mode == "static":
            self._cache = make_static_cache(self.loaded.model, self.max_cache_tokens)

    def generate(self, prompt: str, max_new_tokens: int | None = None, exact_length: bool = False) -> Generation:
        """Greedy continuation of ``prompt``. ``exact_length`` ignores EOS (benchmarks)."""
        import torch

        lm = self.loaded
        new = max_new_tokens or self.max_new_tokens
        enc = lm.tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
        input_ids = enc["input_ids"].to(lm.device)
        attention_mask = enc["attention_mask"].to(lm.device)
        if input_ids.shape[1] == 0:  # an empty prompt: start a document
            input_ids = torch.tensor([[lm.tokenizer.eos_token_id]], device=lm.device)
            attention_mask = torch.ones_like(input_ids)
        kwargs: dict[str, Any] = dict(
            do_sample=False,
            max_new_tokens=new,
            repetition_penalty=self.repetition_penalty,
            pad_token_id=lm.tokenizer.pad_token_id or lm.tokenizer.eos_token_id,
            eos_token_id=lm.eos_ids(),
        )
        # greedy: silence sampling knobs a model's generation_config may carry
        kwargs.update(temperature=None, top_p=None, top_k=None)
        if exact_length:
            kwargs["min_new_tokens"] = new
        if self._cache is not None:
            if input_ids.shape[1] + new > self.max_cache_tokens:
                raise ValueError(
                    f"prompt ({input_ids.shape[1]} tokens) + {new} new tokens exceed max_cache_tokens "
                    f"{self.max_cache_tokens}"
                )
            kwargs["past_key_values"] = self._cache
        clock = _TokenClock(lm.device)
        cuda = lm.device.type == "cuda"
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        # no_grad, not inference_mode: the reused static cache's tensors must stay normal tensors
        # (transformers 5.x allocates them lazily inside generate; reset() zeroes them in place)
        with torch.no_grad():
            if self._cache is not None:
                self._cache.reset()
            out = lm.model.generate(input_ids=input_ids, attention_mask=attention_mask, streamer=clock, **kwargs)
        if cuda:
            torch.cuda.synchronize()
        total = time.perf_counter() - t0
        new_ids = out[0, input_ids.shape[1] :]
        n_new = int(new_ids.shape[0])
        stamps = clock.stamps or [t0 + total]
        ttft = stamps[0] - t0
        decode_time = stamps[-1] - stamps[0]
        return Generation(
            prompt=prompt,
            text=lm.tokenizer.decode(new_ids, skip_special_tokens=True),
            prompt_tokens=int(input_ids.shape[1]),
            new_tokens=n_new,
            ttft_s=ttft,
            decode_tokens_per_s=(n_new - 1) / decode_time if n_new > 1 and decode_time > 0 else 0.0,
            total_s=total,
            peak_memory_mb=torch.cuda.max_memory_allocated() / 2**20 if cuda else None,
        )


def make_static_cache(model, max_cache_len: int):
    """A StaticCache for batch 1 under both the 4.x and the 5.x constructor."""
    from transformers import StaticCache

    params = inspect.signature(StaticCache.__init__).parameters
    candidates = dict(
        config=model.config,
        max_cache_len=max_cache_len,
        max_batch_size=1,
        batch_size=1,
        device=model.device,
        dtype=model.dtype,
    )
    kwargs = {k: v for k, v in candidates.items() if k in params}
    return StaticCache(**kwargs)


def warm_up(decoder: Decoder, prompt: str = "日本の首都は", rounds: int = 2) -> float:
    """Run short generations so compilation / CUDA graph capture happens before timing; seconds spent."""
    t0 = time.perf_counter()
    for _ in range(rounds):
        decoder.generate(prompt, max_new_tokens=min(8, decoder.max_new_tokens), exact_length=True)
    return time.perf_counter() - t0
