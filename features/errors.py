"""Errors raised for bad input, which the CLI turns into exit code 2."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Problem:
    """One broken rule: where, what, how many rows, a few of them, and the fix."""

    table: str
    column: str
    rule: str
    severity: Literal["hard", "soft"]
    rows: int
    examples: tuple[str, ...]
    phrase: str
    fix: str

    @property
    def message(self) -> str:
        shown = f" ({', '.join(self.examples)})" if self.examples else ""
        # rows == 0 marks a problem of the table's shape (a missing column), not of its rows.
        count = "" if self.rows == 0 else f"{self.rows:,} {'row' if self.rows == 1 else 'rows'} "
        return (
            f"{self.table}.{self.column}: {count}{self.phrase}{shown} "
            f"[rule: {self.rule}]. {self.fix[:1].upper()}{self.fix[1:]}."
        )


class ContractError(ValueError):
    """The input breaks the data contract; the message lists every hard problem."""

    def __init__(self, problems: Sequence[Problem] | str) -> None:
        self.problems: tuple[Problem, ...] = () if isinstance(problems, str) else tuple(problems)
        text = problems if isinstance(problems, str) else "\n".join(p.message for p in problems)
        super().__init__(text)


class ChurnWarning(UserWarning):
    """A warning of this project's own; the tests turn it into an error."""
