"""affectkit's measurement suite: ``python -m benchmarks --help``."""
