"""The checks every named thing of the settings and models shares: a name that must
match a pattern (one, or each of a list), and names defined at most once in a list
(accounts, licence pools)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Protocol, TypeVar

L = TypeVar("L", list[str], list[str] | None)


class Named(Protocol):
    """Anything with a ``name``."""

    @property
    def name(self) -> str: ...


N = TypeVar("N", bound=Named)


def check_name(value: str, pattern: re.Pattern[str], what: str) -> str:
    """``value`` if ``pattern`` matches it, else ValueError: ``<what> 'value' must match``."""
    if not pattern.match(value):
        raise ValueError(f"{what} {value!r} must match {pattern.pattern}")
    return value


def each_matching(values: L, pattern: re.Pattern[str], error: str) -> L:
    """``values`` (strings, or None) if ``pattern`` matches each, else ValueError with
    ``error`` formatted for the first that does not (``{value}``: its repr, cut to 64
    characters)."""
    for value in values or ():
        if not pattern.match(value):
            raise ValueError(error.format(value=repr(value[:64])))
    return values


def unique_names(items: Iterable[N], what: str) -> list[N]:
    """``items`` as a list, or ValueError naming the first ``what`` defined twice."""
    out = list(items)
    seen: set[str] = set()
    for item in out:
        if item.name in seen:
            raise ValueError(f"{what} {item.name!r} is defined twice")
        seen.add(item.name)
    return out
