"""GPU labels of this node, found with ``nvidia-smi`` when it is installed.

A node with NVIDIA GPUs advertises ``gpu=<model>`` (e.g. ``gpu=a100``, ``gpu=rtx-4090``)
and ``gpus=<count>``, so jobs can ask for ``{"labels": {"gpu": "a100"}}``. Labels set in
the worker's configuration win over these.
"""

from __future__ import annotations

import functools
import logging
import re
import shutil
import subprocess

log = logging.getLogger(__name__)

QUERY = ["--query-gpu=name,memory.total", "--format=csv,noheader,nounits"]
_VENDOR = {"nvidia", "tesla", "geforce", "quadro"}
_FORM = re.compile(r"^(sxm\d*|pcie|nvl|hbm\d*e?|\d+gb)$")


def model_label(name: str) -> str:
    """``NVIDIA A100-SXM4-40GB`` → ``a100``; ``NVIDIA GeForce RTX 4090`` → ``rtx-4090``."""
    words = [w for w in re.split(r"[\s\-_]+", name.lower()) if w and w not in _VENDOR]
    model: list[str] = []
    for word in words:
        if _FORM.match(word):
            break
        model.append(word)
    return "-".join(model) or "unknown"


@functools.lru_cache(maxsize=1)
def gpu_labels() -> dict[str, str]:
    """Labels for the GPUs ``nvidia-smi`` reports (found once per process); {} if none."""
    tool = shutil.which("nvidia-smi")
    if tool is None:
        return {}
    try:
        out = subprocess.run([tool, *QUERY], capture_output=True, text=True, timeout=10,
                             check=True).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        log.warning("nvidia-smi failed; no GPU labels: %s", exc)
        return {}
    names = [line.split(",")[0].strip() for line in out.splitlines() if line.strip()]
    if not names:
        return {}
    return {"gpu": model_label(names[0]), "gpus": str(len(names))}
