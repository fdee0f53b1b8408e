#!/usr/bin/env python3
"""TEST SHIM (not a fake scheduler): makes one scheduler command misbehave on purpose.

A shim directory holds a symlink named like the command (``squeue``, ``bjobs``...)
pointing here, plus ``.real`` (the directory of the real command). While
``<name>.failures`` holds N > 0, each call uses up one failure: it prints the line in
``<name>.message`` to stderr and exits with the code in ``<name>.rc`` (default 1), or,
when ``<name>.garbage`` exists, prints that file to stdout and exits 0 (garbled
output). Otherwise it runs the real command with the same arguments.
"""

from __future__ import annotations

import fcntl
import os
import sys
from pathlib import Path

shim = Path(sys.argv[0])
name, directory = shim.name, shim.parent
counter = directory / f"{name}.failures"
with open(directory / ".lock", "a+") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    left = int(counter.read_text().strip() or 0) if counter.exists() else 0
    if left > 0:
        counter.write_text(str(left - 1))
if left > 0:
    garbage = directory / f"{name}.garbage"
    if garbage.exists():
        sys.stdout.write(garbage.read_text())
        sys.exit(0)
    message = directory / f"{name}.message"
    sys.stderr.write((message.read_text() if message.exists() else f"{name}: failure") + "\n")
    rc = directory / f"{name}.rc"
    sys.exit(int(rc.read_text()) if rc.exists() else 1)
real = Path((directory / ".real").read_text().strip()) / name
os.execv(str(real), [str(real), *sys.argv[1:]])
