"""Benchmarks of issue 9: `python -m bench` runs them all (see bench/harness.py)."""
