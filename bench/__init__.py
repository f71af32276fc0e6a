"""l3ic benchmark harness: classic codecs and l3ic behind one interface, RD curves, BD-rates, speed.

Tools: ``python -m bench.rd`` (rate-distortion sweep), ``python -m bench.speed`` (timings).
See docs/benchmarks.md.
"""
