"""Benchmarks run by scripts/benchmark.py: one module per sub-command."""
