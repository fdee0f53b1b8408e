"""Property-based API testing: schemathesis generates requests from the gateway's own
OpenAPI document (valid and invalid bodies, query strings, path parameters, headers)
and sends them over real HTTP to a real gateway in token mode, as an ordinary user
(not an admin: the routes an attacker with a user's token reaches), with a real worker
running what it accepts as an unprivileged test account (``job_account``), inside an
allowed root folder.

Bounded for CI: ``SCHEMATHESIS_EXAMPLES`` examples per operation (default 30, about
1,200 requests over the documented operations); raise it locally for a longer run. Every
answer must be non-5xx and match the documented schema for its status (and the
status must be documented). The gateway and worker have their own key prefix.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import redis
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
from simfarm.common.store import NodeStore
from simfarm.common.tokens import TokenEntry, hash_token
from tests.helpers import free_port, start_gateway, start_worker, stop_process, wait_until

TOKEN = "fuzz-user-token-0123456789"
EXAMPLES = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "30"))
# Long polls and WebSockets would only make the generator wait; blob uploads write files.
SKIPPED = r"(/ws$|/docs|/blobs/|/events$)"


@pytest.fixture(scope="module")
def fuzz_gateway(settings: Settings, job_account: str,
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("fuzz")
    fuzz = settings.model_copy(update={
        "gateway_port": free_port(), "key_prefix": "fuzz:", "node_name": "fuzz-node",
        "state_dir": root / "state", "allowed_roots": [str(root / "data")],
        "auth_tokens": [TokenEntry(user="fuzzer", hash=hash_token(TOKEN))],
        "job_user": job_account, "worker_concurrency": 2, "node_cores": 4,
    })
    (root / "data").mkdir()
    proc = start_gateway(fuzz, root / "gateway.log")
    worker = start_worker(fuzz, root / "worker.log")
    nodes = NodeStore(redis.Redis.from_url(fuzz.redis_url or ""), fuzz.key_prefix)
    wait_until(lambda: nodes.is_alive("fuzz-node"), 60, "the fuzz worker")
    yield f"http://127.0.0.1:{fuzz.gateway_port}"
    stop_process(worker)
    stop_process(proc)


@pytest.mark.timeout(300)  # ~2,300 requests on 2 shared cores, a worker running beside
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
        except (Exception, BaseExceptionGroup) as exc:  # collect every failure, report all
            failures.append(f"{operation.method.upper()} {operation.path}: {exc}"[:2000])
    print(f"schemathesis: {len(calls)} requests over {operations} operations")
    assert operations > 20 and len(calls) >= 10 * operations  # really exercised
    assert not failures, "\n\n".join(failures)
