"""Benchmarks: reproducible measurements that print a figure and its ratio against a baseline timed in
the same run. Run with `python -m benchmarks.<name>`. Benchmarks are not tests.
"""
