"""Feature families: portable SQL definitions of point-in-time customer features.

Each module holds the features of one behaviour (recency and frequency,
monetary value and margin, categories, returns and support, engagement and
advocacy, static attributes) as :class:`features.registry.FeatureDefinition`
objects: a name, a dtype, the tables and optional columns it needs, a one-line
description and the SQL expression that computes it. ``features.registry``
collects them; ``features.build`` turns a selection into one query.
"""
