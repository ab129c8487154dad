"""Reading and validating the data contract, point-in-time features, labels and cohorts.

This layer never imports :mod:`models` or :mod:`pipelines`.
"""
