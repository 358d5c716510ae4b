"""One module per scenario of bench/run.py (shared/BENCHMARKS.md); each exposes a function
``(run, *servers)`` that measures and stores its numbers in ``run.section(ID)``."""
