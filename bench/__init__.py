"""Proof under faults and load: the chaos suite (`python -m bench.chaos`) and the benchmark
against a minimal Temporal workflow of the same shape (`python -m bench.benchmark`)."""
