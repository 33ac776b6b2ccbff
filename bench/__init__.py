"""Benchmarks: each prints one JSON line with a ratio against a limit measured in the same run."""
