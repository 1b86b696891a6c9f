"""Benchmarks of infomax: recipes that measure, outside the package.

Run them from the root of a checkout as modules, e.g. ``python -m benchmarks.dim_speed --help``;
they share :mod:`benchmarks.harness` (run metadata, result files, the speed harness, the
throughput of a run, the random-init baseline from the package's own evaluation).
"""
