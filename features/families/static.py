"""Account profile: the attributes of ``accounts`` and ``account_history``.

The ``static_columns`` of the catalogue are declared here; the attributes found in the
data (:mod:`features.attributes`) declare themselves in this family and are computed by
:func:`features.build.feature_table`.
"""

from __future__ import annotations

from features.catalog import Context, Feature, FeatureFamily, register


def declare(ctx: Context) -> list[Feature]:
    return [
        Feature(
            c,
            "static",
            c.replace("_", " ").capitalize(),
            "category",
            None,
            "none",
            f"account attribute '{c}' from the accounts table",
            categorical=True,
            source="accounts",
        )
        for c in ctx.static_columns
    ]


FAMILY = register(
    FeatureFamily(
        name="static",
        words="account profile",
        play="Review the account's fit and success plan",
        declare=declare,
    )
)
