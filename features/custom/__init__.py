"""User-defined features: windowed SQL aggregates declared in ``winback.toml``.

``spec`` checks the ``[[features.custom]]`` entries and versions them,
``windowed`` is how the engine computes them (and the built-in product family),
``leakage`` checks on a shop's own data that nothing after a cutoff moves them.
"""
