"""Property-based API testing: schemathesis generates requests from the gateway's own
OpenAPI document (valid and invalid bodies, query strings, path parameters, headers)
and sends them over real HTTP to a real gateway in token mode (admin token).

Bounded for CI: ``SCHEMATHESIS_EXAMPLES`` examples per operation (default 50, about
2,000 requests over the documented operations); raise it locally for a longer run. Every
answer must be non-5xx and match the documented schema for its status (and the
status must be documented). The gateway has its own key prefix and no worker: nothing
it accepts ever runs.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from simfarm.common.settings import Settings
from simfarm.common.tokens import TokenEntry, hash_token
from tests.helpers import free_port, start_gateway, stop_process

TOKEN = "fuzz-admin-token-0123456789"
EXAMPLES = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "50"))
# Long polls and WebSockets would only make the generator wait; blob uploads write files.
SKIPPED = r"(/ws$|/docs|/blobs/|/events$)"


@pytest.fixture(scope="module")
def fuzz_gateway(settings: Settings) -> Iterator[str]:
    fuzz = settings.model_copy(update={
        "gateway_port": free_port(), "key_prefix": "fuzz:",
        "auth_tokens": [TokenEntry(user="fuzzer", hash=hash_token(TOKEN), admin=True)],
    })
    proc = start_gateway(fuzz, settings.state_dir / "fuzz-gateway.log")
    yield f"http://127.0.0.1:{fuzz.gateway_port}"
    stop_process(proc)


def test_api_answers_match_the_openapi_document(fuzz_gateway: str) -> None:
    schema = schemathesis.openapi.from_url(f"{fuzz_gateway}/api/v1/openapi.json")
    schema.config.update(base_url=fuzz_gateway)
    schema.config.generation.update(modes=list(GenerationMode))  # valid and invalid data
    checks = [not_a_server_error, status_code_conformance, content_type_conformance,
              response_schema_conformance]
    failures: list[str] = []
    operations = 0
    calls: list[int] = []
    for result in schema.exclude(path_regex=SKIPPED).get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def run(case: schemathesis.Case) -> None:
            calls.append(1)
            case.call_and_validate(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30,
                                   checks=checks)

        try:
            run()
        except Exception as exc:  # collect every operation's failure, then report them all
            failures.append(f"{operation.method.upper()} {operation.path}: {exc}"[:2000])
    print(f"schemathesis: {len(calls)} requests over {operations} operations")
    assert operations > 20 and len(calls) >= 10 * operations  # really exercised
    assert not failures, "\n\n".join(failures)
