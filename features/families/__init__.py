"""The built-in feature families, one module each; importing this package registers them.

``BUILT_IN`` lists the modules in the order of the catalogue's columns, and importing each
registers its family. To add a family: its contract table in :mod:`features.contract` (if
new), a module here declaring a :class:`features.catalog.FeatureFamily` with
:func:`features.catalog.register`, its name below, and its tests (``docs/architecture.md``).
"""

from importlib import import_module

BUILT_IN = (
    "frequency",
    "breadth",
    "depth",
    "trend",
    "concentration",
    "lifecycle",
    "support",
    "voice",
    "sentiment",
    "billing",
    "activities",
    "static",
)
for _module in BUILT_IN:
    import_module(f"features.families.{_module}")
