"""The benchmark scripts; a package so that `python -m benchmarks.gpu` and its modules import each other from the repository root."""
