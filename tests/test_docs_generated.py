"""The generated reference pages in docs/ are current (regenerate them when this fails)."""

from __future__ import annotations

from simfarm.gateway.openapi.markdown import current_reference
from tests.helpers import ROOT


def test_rest_reference_is_current() -> None:
    written = (ROOT / "docs" / "rest-api.md").read_text()
    assert written == current_reference(), (
        "docs/rest-api.md is out of date: run "
        "`python -m simfarm.gateway.openapi.markdown > docs/rest-api.md`"
    )
    assert "### `POST /api/v1/jobs`" in written and "JobSpec" in written


def test_configuration_reference_is_current() -> None:
    from simfarm.common.settings_reference import render

    written = (ROOT / "docs" / "configuration.md").read_text()
    assert written == render(), (
        "docs/configuration.md is out of date: run "
        "`python -m simfarm.common.settings_reference > docs/configuration.md`"
    )
    assert "`SIMFARM_REDIS_URL`" in written and "`SIMFARM_LOG_FORMAT`" in written
