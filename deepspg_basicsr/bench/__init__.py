"""Benchmarks of DeepSPG: one core (:mod:`.core`), shared builders (:mod:`.common`), one module per
section, one entry point (``deepspg-bench <section>``, :mod:`.cli`). Not imported by the package
itself: ``import deepspg_basicsr`` does not load it."""
