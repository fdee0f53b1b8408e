"""docs/architecture.md stays true to the code: the modules it names exist, the layers
import one way, and the traced path of one command job is the one it lists."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from tests.job_path import DOC, ROOT, documented, render, trace_one_job

PACKAGE = ROOT / "simfarm"
_NAMED = re.compile(r"`(simfarm/[A-Za-z0-9_/.]+)`")


def _imports(path: Path) -> set[str]:
    """Modules a file imports (top-level or inside functions)."""
    tree = ast.parse(path.read_text(), str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def _modules(package: str) -> list[Path]:
    return sorted((PACKAGE / package).rglob("*.py"))


def test_every_file_the_architecture_names_exists() -> None:
    named = set(_NAMED.findall(DOC.read_text()))
    assert len(named) > 20
    missing = sorted(n for n in named if not (ROOT / n.rstrip("/")).exists())
    assert not missing, f"docs/architecture.md names files that do not exist: {missing}"


def _offenders(package: str, forbidden: tuple[str, ...],
               allowed: frozenset[str] = frozenset()) -> list[str]:
    out = []
    for path in _modules(package):
        rel = path.relative_to(ROOT).as_posix()
        if rel in allowed:
            continue
        for module in _imports(path):
            if module.split(".")[0] in forbidden or module.startswith(forbidden):
                out.append(f"{rel} imports {module}")
    return out


def test_layers_import_one_way() -> None:
    assert not _offenders("gateway", ("simfarm.workers", "simfarm.client", "simfarm.compat"))
    assert not _offenders("workers", ("simfarm.gateway", "simfarm.client", "simfarm.compat"))
    assert not _offenders("common", ("simfarm.gateway", "simfarm.workers", "simfarm.client",
                                     "simfarm.compat"))
    # the CLI is also the entry point that starts the gateway and worker processes
    assert not _offenders("client", ("simfarm.gateway", "simfarm.workers", "simfarm.compat"),
                          allowed=frozenset({"simfarm/client/cli.py"}))
    assert not _offenders("compat", ("simfarm.gateway", "simfarm.workers"))


def test_only_workers_touch_celery() -> None:
    for package in ("gateway", "common", "client", "compat"):
        assert not _offenders(package, ("celery", "kombu")), package


def test_the_documented_job_path_is_the_one_the_code_takes() -> None:
    traced = render(trace_one_job())
    assert documented() == traced, (
        "the job path in docs/architecture.md is out of date: run "
        "`python -m tests.job_path --write-docs` and read the change\n" + traced)


def test_gateway_modules_make_no_locks_at_import() -> None:
    # gevent workers patch threading after the master imported the app's modules: a lock
    # made at import is an OS lock, and a request holding it across a Redis call blocks
    # every other request of the process (the overview's six charts hung on one).
    made = []
    for path in _modules("gateway"):
        tree = ast.parse(path.read_text(), str(path))
        for node in tree.body:
            value = node.value if isinstance(node, ast.Assign | ast.AnnAssign) else None
            if isinstance(value, ast.Call) and isinstance(value.func, ast.Attribute) and \
                    isinstance(value.func.value, ast.Name) and value.func.value.id == "threading":
                made.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not made, f"module-level threading objects in the gateway: {made}"
