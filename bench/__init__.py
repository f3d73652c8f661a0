"""Benchmarks: each prints JSON; `make bench` runs them all (bench/run.py)."""
