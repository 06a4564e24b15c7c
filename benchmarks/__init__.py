"""Benchmarks: latency, accuracy and training-speed reports, `memgaze-bench`."""
