"""Print the README's table of feature families from their declarations.

``python -m features.families`` writes the Markdown table that ``README.md`` holds between
its ``families:start`` and ``families:end`` markers; ``tests/test_family_example.py``
checks that the two agree.
"""

from features.catalog import catalog, families

#: An example event and an example account attribute for the features made one per each.
EXAMPLE_EVENT, EXAMPLE_ATTRIBUTE = "login", "segment"


def family_table() -> str:
    """One row per registered family: its table, features, drivers' words and play."""
    declared = catalog(top_events=(EXAMPLE_EVENT,), static_columns=(EXAMPLE_ATTRIBUTE,))
    lines = [
        "| family | reads | features | drivers say | default play |",
        "|---|---|---|---|---|",
    ]
    for fam in families():
        mine = [f for f in declared if f.family == fam.name]
        names = ", ".join(f"`{f.name}`" for f in mine)
        tables = ", ".join(f"`{t}`" for t in dict.fromkeys(f.source for f in mine))
        lines.append(f"| {fam.name} | {tables} | {names} | {fam.words} | {fam.play} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(family_table(), end="")
