"""Markdown building blocks of the report: percentages with their intervals, numbers, tables."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def pct(fraction: float) -> str:
    return f"{100.0 * fraction:.1f}%"


def pct_value(percent: float) -> str:
    return f"{percent:.1f}%"


def with_ci(text: str, ci: Sequence[float] | None, percent: bool = False) -> str:
    """`text` followed by its 95% interval in the same unit, e.g. "36.0% [31.8, 40.2]"."""
    if ci is None:
        return text
    scale = 1.0 if percent else 100.0
    return f"{text} [{scale * ci[0]:.1f}, {scale * ci[1]:.1f}]"


def pct_ci(fraction: float, ci: Sequence[float] | None) -> str:
    return with_ci(pct(fraction), ci)


def pct_value_ci(percent: float, ci: Sequence[float] | None) -> str:
    return with_ci(pct_value(percent), ci, percent=True)


def signed_pp(difference: float, ci: Sequence[float] | None) -> str:
    """A difference of fractions in percentage points, e.g. "+20.0 pp [+8.0, +31.0]"."""
    text = f"{100 * difference:+.1f} pp"
    return f"{text} [{100 * ci[0]:+.1f}, {100 * ci[1]:+.1f}]" if ci is not None else text


def num(value: float, digits: int = 4) -> str:
    return f"{value:.{digits}g}"


def epsilon_label(epsilon: float) -> str:
    return "0 (clean)" if epsilon == 0 else f"{epsilon:g}"


def kernel_list(kernels: Sequence[int]) -> str:
    return ", ".join(map(str, kernels)) if kernels else "none"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-flavoured markdown table; cells are str()-ed and '|' is escaped."""
    def cell(value: Any) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(h) for h in header) + " |",
             "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)
