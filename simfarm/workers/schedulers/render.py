"""Rendering job scripts from the templates that sit beside the backend modules.

Every value that comes from a user goes through an escaping filter: ``sh`` (POSIX shell
single quotes), ``shjoin`` (an argv as one shell command line), ``ps`` (PowerShell
single-quoted literal) or ``directive`` (re-checks a value placed on a ``#SBATCH``-style
line). Undefined variables are errors, not empty strings.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2

from simfarm.workers.schedulers.options import check_directive_value

TEMPLATE_DIR = Path(__file__).parent
# PowerShell treats these as single quotes too; each must be doubled inside a literal.
_PS_QUOTES = ("'", "\u2018", "\u2019", "\u201a", "\u201b")


def sh_quote(value: object) -> str:
    """Quote one value for a POSIX shell (numbers stay bare)."""
    if isinstance(value, bool):
        value = int(value)
    if isinstance(value, int | float):
        return str(value)
    return shlex.quote(str(value))


def sh_join(argv: Iterable[object]) -> str:
    """An argv as one safely quoted shell command line."""
    return " ".join(sh_quote(a) for a in argv)


def ps_quote(value: object) -> str:
    """A PowerShell single-quoted string literal (no variable expansion inside)."""
    text = str(value)
    for quote in _PS_QUOTES:
        text = text.replace(quote, quote + quote)
    return "'" + text + "'"


def _directive(value: object) -> str:
    checked = check_directive_value("value", str(value))
    return checked or ""


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    """The shared Jinja2 environment for job script templates."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["sh"] = sh_quote
    env.filters["shjoin"] = sh_join
    env.filters["ps"] = ps_quote
    env.filters["directive"] = _directive
    return env


def render(template: str, context: Mapping[str, Any]) -> str:
    """Render the named template file (e.g. ``slurm.sh.tmpl``) with ``context``."""
    return environment().get_template(template).render(**context)
