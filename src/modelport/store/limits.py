"""Values cut to their column's size before they are written.

Request-derived strings (a path, an X-Forwarded-For address, a model name) can be longer than
their `String(n)` column. SQLite stores them anyway; PostgreSQL refuses the whole insert, which
used to stop every usage and audit write behind one long path (and a NUL, which no PostgreSQL
text holds, did the same). Each table's limits come from
its own metadata here, so a column resized in tables.py is clipped to its new size.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from sqlalchemy import String, Table

MARK = "…"  # ends a clipped value, so a reader sees it was cut


@functools.cache
def lengths(table: Table) -> dict[str, int]:
    """{column: its maximum length} for the table's bounded String columns."""
    return {
        column.name: int(column.type.length)
        for column in table.columns
        if isinstance(column.type, String) and column.type.length
    }


def clip(value: str, length: int) -> str:
    """`value` in at most `length` characters, without NUL (which PostgreSQL text cannot hold;
    a percent-decoded path may carry one)."""
    value = value.replace("\x00", "\ufffd")
    return value if len(value) <= length else value[: length - len(MARK)] + MARK


def clip_row(table: Table, row: Mapping[str, Any]) -> dict[str, Any]:
    """`row` with every string longer than its column cut to fit."""
    limits = lengths(table)
    return {
        name: clip(value, limits[name]) if isinstance(value, str) and name in limits else value
        for name, value in row.items()
    }
