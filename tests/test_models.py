"""Validation rules of the job specification."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from simfarm.common.models import JobSpec
from simfarm.common.states import JobState


def test_defaults() -> None:
    spec = JobSpec(argv=["echo", "hi"])
    assert spec.priority == 5 and spec.kind == "command" and spec.resources.cores == 1


@pytest.mark.parametrize(
    "data, field",
    [
        ({"argv": []}, ""),
        ({"argv": "echo hi"}, "argv"),
        ({"argv": ["echo", 3]}, "argv.1"),
        ({"argv": ["echo"], "priority": 11}, "priority"),
        ({"argv": ["echo"], "bogus": 1}, "bogus"),
        ({"argv": ["echo"], "resources": {"cores": 0}}, "resources.cores"),
        ({"argv": ["echo"], "env": {"1BAD": "x"}}, "env"),
        ({"argv": ["a\x00b"]}, "argv"),
    ],
)
def test_invalid_specs_name_the_field(data: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as err:
        JobSpec.model_validate(data)
    locs = [".".join(map(str, e["loc"])) for e in err.value.errors()]
    assert any(loc.startswith(field) for loc in locs), locs


def test_state_machine() -> None:
    assert JobState.PENDING.can_go_to(JobState.SCHEDULED)
    assert not JobState.COMPLETED.can_go_to(JobState.RUNNING)
    # a cluster job handed to another worker of its cluster (takeover) is scheduled again
    assert JobState.RUNNING.can_go_to(JobState.SCHEDULED)
    assert not JobState.RUNNING.can_go_to(JobState.HELD)
    assert not JobState.PENDING.can_go_to(JobState.COMPLETED)
    assert JobState.SCHEDULED.can_go_to(JobState.COMPLETED)  # a cluster job over between polls
    assert JobState.CANCELLED.final and not JobState.RUNNING.final
    assert JobState.PENDING.order < JobState.RUNNING.order < JobState.FAILED.order
