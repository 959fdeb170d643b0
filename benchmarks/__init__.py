"""Benchmarks of the SDK and the local server (``python -m benchmarks``)."""
