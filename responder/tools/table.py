"""A small fixed-width table printer (no dependency: the daemon keeps its dependencies few).

Cells may hold several lines; every column is as wide as its widest line,
columns are separated by two spaces and the last column is not padded, so
the output is stable for ``grep`` and for tests.
"""

from __future__ import annotations

from collections.abc import Sequence

_GAP = "  "


def render_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """The table as text: a header line, a rule, then each row (multi-line cells allowed).

    Raises:
        ValueError: a row with a different number of cells than the header.
    """
    for cells in rows:
        if len(cells) != len(header):
            raise ValueError(f"row of {len(cells)} cells under a header of {len(header)}")
    split = [[cell.split("\n") for cell in row] for row in (header, *rows)]
    widths = [max(len(line) for row in split for line in row[i]) for i in range(len(header))]
    lines = [_line(split[0], widths, 0), _GAP.join("-" * w for w in widths)]
    for split_row in split[1:]:
        height = max(len(cell) for cell in split_row)
        lines += [_line(split_row, widths, i) for i in range(height)]
    return "\n".join(lines)


def _line(row: list[list[str]], widths: list[int], index: int) -> str:
    cells = [cell[index] if index < len(cell) else "" for cell in row]
    padded = [cell.ljust(width) for cell, width in zip(cells[:-1], widths, strict=False)]
    return _GAP.join([*padded, cells[-1]]).rstrip()
