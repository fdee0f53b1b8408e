"""Local limits of a node (pure): which usage holds a node, and the reason users see."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from simfarm.common.limits import NodeLimits, Usage, held_reason

BUSY = Usage(cpu_percent=95.0, memory_percent=80.0, free_disk_mb=500)


def test_no_limits_never_hold() -> None:
    assert held_reason(NodeLimits(), BUSY) is None


def test_each_limit_hit_is_named_with_the_numbers() -> None:
    limits = NodeLimits(max_cpu_percent=90, max_memory_percent=75, min_free_disk_mb=1000)
    assert held_reason(limits, BUSY) == (
        "CPU 95% > max 90%; memory 80% > max 75%; free disk 500 MB < min 1000 MB")


def test_limits_not_reached_do_not_hold() -> None:
    limits = NodeLimits(max_jobs=4, max_cpu_percent=99, max_memory_percent=90,
                        min_free_disk_mb=100)
    assert held_reason(limits, BUSY) is None


def test_max_jobs_zero_holds_the_node() -> None:
    assert held_reason(NodeLimits(max_jobs=0), BUSY) == "max_jobs is 0"


@pytest.mark.parametrize("bad", [{"max_cpu_percent": 0}, {"max_memory_percent": 101},
                                 {"min_free_disk_mb": -1}, {"max_jobs": -1}, {"cpu": 5}])
def test_bad_limits_are_rejected(bad: dict[str, float]) -> None:
    with pytest.raises(ValidationError):
        NodeLimits.model_validate(bad)
