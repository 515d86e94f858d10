"""Benchmarks (speed/memory targets live here, never in timed tests)."""
