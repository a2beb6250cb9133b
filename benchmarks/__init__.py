"""Benchmarks of art-ssni (run from the repository root; not part of the installed package).

``python -m benchmarks [--quick] [--device cpu|cuda] [--out docs/benchmarks.md]`` measures the batched per-sample
reverse engine against a padded engine and a per-sample loop (NFE and wall time), the cost of SSNI's score
estimation relative to the purification it precedes, and how purification time scales with the batch and the
noise level. It prints the tables and writes a Markdown report plus a JSON file of every number next to it.

Modules: :mod:`benchmarks.common` (timing, machine information), :mod:`benchmarks.models` (the UNets measured),
:mod:`benchmarks.engine` (the baseline engines and the measurements), :mod:`benchmarks.report` (tables).
``benchmarks/`` uses only the public API of ``art_ssni``.
"""
