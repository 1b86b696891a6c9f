"""The old name of :mod:`benchmarks.harness`, kept only while scripts that put ``benchmarks/`` on
``sys.path`` move to ``from benchmarks.harness import ...`` (run as ``python -m benchmarks.X``).
Nothing new imports it."""

from harness import Clock, write_results  # noqa: F401
