"""No shell anywhere: every process simfarm starts gets an argv list.

Walks the syntax tree of every Python file of the project (library, tests, benchmarks)
for ``shell=`` arguments other than ``False``, ``os.system``/``os.popen``/``os.exec*p``
string helpers and ``subprocess.getoutput``-style helpers that always use a shell.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.helpers import ROOT

SHELL_HELPERS = {
    ("os", "system"), ("os", "popen"), ("subprocess", "getoutput"),
    ("subprocess", "getstatusoutput"), ("commands", "getoutput"),
}


def _python_files() -> list[Path]:
    files = []
    for folder in ("simfarm", "tests", "benchmarks", "deploy", "scripts", "examples"):
        files.extend(p for p in (ROOT / folder).rglob("*.py") if "__pycache__" not in p.parts)
    return files


def _offences(path: Path) -> list[str]:
    found = []
    name = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        for kw in node.keywords:
            if kw.arg == "shell" and not (
                isinstance(kw.value, ast.Constant) and kw.value.value is False
            ):
                found.append(f"{name}:{node.lineno}: shell={ast.unparse(kw.value)}")
        func = node.func
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
            if (func.value.id, func.attr) in SHELL_HELPERS:
                found.append(f"{name}:{node.lineno}: {ast.unparse(func)}()")
    return found


def test_no_process_is_started_through_a_shell() -> None:
    files = _python_files()
    assert len(files) > 30  # the walk really covers the project
    offences = [o for f in files for o in _offences(f)]
    assert offences == []


def test_the_scan_catches_what_it_looks_for(tmp_path: Path) -> None:
    bad = tmp_path / "probe.py"
    bad.write_text("import os, subprocess\nsubprocess.run('ls', shell=True)\nos.system('ls')\n")
    assert len(_offences(bad)) == 2
