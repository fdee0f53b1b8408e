"""Accounts: who pays for a job. Membership and defaults (simfarm.common.accounts), and
over real HTTP: every door gives a job its owner's default account and refuses one its
owner may not charge; GET /api/v1/accounts.

A real gateway (gunicorn) in token mode on the session's Redis under its own prefix:
alice is listed by account cfd, bob by group em, carol by none (she charges the default
account), root is an admin.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from simfarm.common.accounts import Account, AccountBook
from simfarm.common.settings import Settings
from simfarm.common.tokens import TokenEntry, hash_token
from tests.helpers import free_port, start_gateway, stop_process

TOKENS = {"alice": "alice-token-0123456789", "bob": "bob-token-0123456789",
          "carol": "carol-token-0123456789", "root": "root-token-0123456789"}
ACCOUNTS = [
    Account(name="cfd", shares=3, users=("alice",)),
    Account(name="em", shares=1, groups=("em-team",), users=("alice",)),
]
ENTRIES = [
    TokenEntry(user="alice", hash=hash_token(TOKENS["alice"])),
    TokenEntry(user="bob", hash=hash_token(TOKENS["bob"]), groups=["em-team"]),
    TokenEntry(user="carol", hash=hash_token(TOKENS["carol"])),
    TokenEntry(user="root", hash=hash_token(TOKENS["root"]), admin=True),
]
OK = {"argv": ["true"]}


def test_members_defaults_and_refusals() -> None:
    book = AccountBook(ACCOUNTS, "default", ENTRIES)
    assert [a.name for a in book.accounts_of("alice")] == ["cfd", "em"]
    assert [a.name for a in book.accounts_of("bob")] == ["em"]  # by group
    assert [a.name for a in book.accounts_of("carol")] == ["default"]  # listed nowhere
    assert (book.default_for("alice"), book.default_for("bob"), book.default_for("carol")) == (
        "cfd", "em", "default")
    assert book.refusal("alice", "em", admin=False) is None
    refused = book.refusal("bob", "cfd", admin=False)
    assert refused is not None and refused.status == 403
    assert "bob may not charge account 'cfd' (your accounts: em)" in refused.reason
    assert book.refusal("bob", "cfd", admin=True) is None
    unknown = book.refusal("root", "nope", admin=True)
    assert unknown is not None and unknown.status == 422 and "no such account" in unknown.reason
    # a user listed by some account may not charge the default account
    assert book.refusal("alice", "default", admin=False) is not None


def test_a_token_may_name_its_users_default_account() -> None:
    entry = TokenEntry(user="alice", hash=hash_token("x"), account="em")
    assert AccountBook(ACCOUNTS, "default", [entry]).default_for("alice") == "em"


def test_without_a_default_account_a_user_in_none_charges_nothing() -> None:
    book = AccountBook(ACCOUNTS, "", ENTRIES)
    assert book.default_for("carol") is None and book.accounts_of("carol") == []


def test_bad_account_configuration_is_refused_at_start(settings: Settings) -> None:
    with pytest.raises(ValidationError, match="defined twice"):
        Settings(redis_url=settings.redis_url, accounts=[{"name": "a"}, {"name": "a"}])
    with pytest.raises(ValidationError, match="the default account of bob"):
        Settings(redis_url=settings.redis_url, accounts=[{"name": "a", "users": ["alice"]}],
                 auth_tokens=[{"user": "bob", "hash": hash_token("y"), "account": "a"}])
    with pytest.raises(ValidationError, match="account name"):
        Settings(redis_url=settings.redis_url, accounts=[{"name": "has space"}])


# ---------------------------------------------------------------- over HTTP


@pytest.fixture(scope="module")
def url(settings: Settings) -> Iterator[str]:
    farm = settings.model_copy(update={
        "gateway_port": free_port(), "key_prefix": "acct:", "accounts": ACCOUNTS,
        "auth_tokens": ENTRIES})
    proc = start_gateway(farm, farm.state_dir / "accounts-gateway.log")
    yield f"http://127.0.0.1:{farm.gateway_port}"
    stop_process(proc)


@pytest.fixture(scope="module")
def users(url: str) -> Iterator[dict[str, httpx.Client]]:
    clients = {name: httpx.Client(base_url=url, timeout=30,
                                  headers={"Authorization": f"Bearer {token}"})
               for name, token in TOKENS.items()}
    yield clients
    for c in clients.values():
        c.close()


def _submit(http: httpx.Client, path: str = "/api/v1/jobs", **body: Any) -> httpx.Response:
    return http.post(path, json=body or OK)


def test_jobs_charge_their_owners_default_account(users: dict[str, httpx.Client]) -> None:
    for user, account in (("alice", "cfd"), ("bob", "em"), ("carol", "default")):
        response = _submit(users[user])
        assert response.status_code == 201, response.text
        assert response.json()["spec"]["account"] == account
    chosen = _submit(users["alice"], **OK, account="em")
    assert chosen.status_code == 201 and chosen.json()["spec"]["account"] == "em"


def test_an_account_the_owner_is_not_in_is_refused(users: dict[str, httpx.Client]) -> None:
    refused = _submit(users["bob"], **OK, account="cfd")
    assert refused.status_code == 403
    assert refused.json()["fields"] == [{"field": "account", "reason":
                                         "bob may not charge account 'cfd' (your accounts: em)"}]
    unknown = _submit(users["alice"], **OK, account="nope")
    assert unknown.status_code == 422 and unknown.json()["fields"][0]["field"] == "account"
    # an admin charges any account, for anyone
    admin = _submit(users["root"], **OK, owner="bob", account="cfd")
    assert admin.status_code == 201 and admin.json()["spec"]["account"] == "cfd"
    assert admin.json()["owner"] == "bob"


def test_every_door_settles_and_checks_the_account(users: dict[str, httpx.Client]) -> None:
    bob = users["bob"]
    batch = bob.post("/api/v1/jobs/batch", json={"jobs": [OK, {**OK, "account": "cfd"}]})
    assert batch.status_code == 403 and batch.json()["fields"][0]["field"] == "jobs.1.account"
    sweep = bob.post("/api/v1/sweeps", json={
        "template": {"argv": ["echo", "{x}"]}, "grid": {"x": [1, 2]}})
    assert sweep.status_code == 201, sweep.text
    children = [c["job_id"] for c in sweep.json()["children"]]
    assert {bob.get(f"/api/v1/jobs/{j}").json()["spec"]["account"] for j in children} == {"em"}
    refused = bob.post("/api/v1/sweeps", json={
        "template": {"argv": ["echo", "{x}"], "account": "cfd"}, "grid": {"x": [1]}})
    assert refused.status_code == 403
    assert refused.json()["fields"][0]["field"] == "template.account"
    job = _submit(bob).json()
    again = bob.post(f"/api/v1/jobs/{job['id']}/resubmit")
    assert again.status_code == 201 and again.json()["spec"]["account"] == "em"


def test_accounts_are_listed_with_the_callers_own(users: dict[str, httpx.Client]) -> None:
    body = users["bob"].get("/api/v1/accounts").json()
    assert body["default_account"] == "em"
    rows = {a["name"]: a for a in body["accounts"]}
    assert list(rows) == ["cfd", "em", "default"]
    assert (rows["cfd"]["mine"], rows["em"]["mine"], rows["em"]["default"]) == (False, True, True)
    assert rows["cfd"]["share"] == pytest.approx(3 / 5)
    assert rows["em"]["groups"] == ["em-team"] and rows["default"]["users"] == []
    admin = {a["name"]: a for a in users["root"].get("/api/v1/accounts").json()["accounts"]}
    assert all(a["mine"] for a in admin.values())
