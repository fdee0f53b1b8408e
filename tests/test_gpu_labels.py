"""GPU labels from nvidia-smi (the FAKE one in tests/fakes/nvidia: there is no GPU here)."""

from __future__ import annotations

import os

import pytest

from simfarm.workers import gpu
from tests.helpers import FAKES


@pytest.mark.parametrize(("name", "label"), [
    ("NVIDIA A100-SXM4-40GB", "a100"),
    ("NVIDIA H100 80GB HBM3", "h100"),
    ("NVIDIA GeForce RTX 4090", "rtx-4090"),
    ("Tesla V100-PCIE-16GB", "v100"),
    ("Quadro RTX 6000", "rtx-6000"),
    ("NVIDIA", "unknown"),
])
def test_model_label(name: str, label: str) -> None:
    assert gpu.model_label(name) == label


def _labels(monkeypatch: pytest.MonkeyPatch, path: str, fake_gpus: str | None) -> dict[str, str]:
    monkeypatch.setenv("PATH", path)
    if fake_gpus is not None:
        monkeypatch.setenv("FAKE_GPUS", fake_gpus)
    gpu.gpu_labels.cache_clear()
    try:
        return gpu.gpu_labels()
    finally:
        gpu.gpu_labels.cache_clear()


def test_labels_from_nvidia_smi(monkeypatch: pytest.MonkeyPatch) -> None:
    path = f"{FAKES / 'nvidia'}{os.pathsep}{os.environ['PATH']}"
    two = "NVIDIA L40S:46068;NVIDIA L40S:46068"
    assert _labels(monkeypatch, path, two) == {"gpu": "l40s", "gpus": "2"}


def test_no_nvidia_smi_means_no_gpu_labels(monkeypatch: pytest.MonkeyPatch,
                                           tmp_path: os.PathLike[str]) -> None:
    assert _labels(monkeypatch, str(tmp_path), None) == {}


def test_failing_nvidia_smi_means_no_gpu_labels(monkeypatch: pytest.MonkeyPatch,
                                               tmp_path: os.PathLike[str]) -> None:
    broken = os.path.join(tmp_path, "nvidia-smi")
    with open(broken, "w") as f:
        f.write("#!/bin/sh\necho 'NVIDIA-SMI has failed' >&2\nexit 9\n")
    os.chmod(broken, 0o755)
    assert _labels(monkeypatch, str(tmp_path), None) == {}
