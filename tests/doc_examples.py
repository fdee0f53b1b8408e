"""Run the ```python blocks of a docs page, in order, in one namespace (so a block may use
what an earlier one defined), as a reader would paste them. A block whose preceding line
is ``<!-- not run: WHY -->`` is skipped; every other block must run without error.
Top-level ``await`` is allowed (the PyEDB page uses it as PyEDB's docs did).

    python -m tests.doc_examples PAGE.md [OLD=NEW ...]

``OLD=NEW`` replaces a placeholder (a gateway host name, a shared path) before running.
Prints ``ran PAGE:LINE`` for each block that ran.
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import sys
from pathlib import Path
from typing import Any

NOT_RUN = "<!-- not run:"


def python_blocks(page: Path) -> list[tuple[int, str]]:
    """``(line, code)`` of each ```python block of ``page`` that is to run."""
    lines = page.read_text().splitlines()
    blocks: list[tuple[int, str]] = []
    i = 0
    while i < len(lines):
        if lines[i].strip() == "```python":
            start = i + 1
            end = next(j for j in range(start, len(lines)) if lines[j].strip() == "```")
            before = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
            if not before.strip().startswith(NOT_RUN):
                blocks.append((start + 1, "\n".join(lines[start:end])))
            i = end
        i += 1
    return blocks


def run_page(page: Path, replace: dict[str, str]) -> None:
    """Run every block of ``page`` (see the module docstring)."""
    namespace: dict[str, Any] = {"__name__": "__main__"}
    for line, code in python_blocks(page):
        for old, new in replace.items():
            code = code.replace(old, new)
        compiled = compile(code, f"{page}:{line}", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        result = eval(compiled, namespace)  # the docs' own examples
        if inspect.iscoroutine(result):
            asyncio.run(result)
        print(f"ran {page.name}:{line}", flush=True)


if __name__ == "__main__":
    pairs = dict(arg.split("=", 1) for arg in sys.argv[2:])
    run_page(Path(sys.argv[1]), pairs)
