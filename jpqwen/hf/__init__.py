"""The Hugging Face side of jpqwen: loading exported models, bits per character,
greedy generation with timings, and the export parity check.

Everything here runs on a CPU (tests use a tiny random Qwen2) and on CUDA; it
imports torch/transformers lazily so ``import jpqwen.hf`` is cheap.
"""
