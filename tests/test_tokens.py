"""Token hashing at rest and lookup (simfarm.common.tokens) and `simfarm hash-token`."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from pydantic import ValidationError

from simfarm.common.tokens import TokenEntry, TokenTable, hash_token, matches, new_token
from tests.helpers import ROOT


def test_hashes_never_contain_the_token_and_verify() -> None:
    token = new_token()
    for slow in (False, True):
        hashed = hash_token(token, slow=slow, iterations=1000)
        assert token not in hashed and matches(token, hashed)
        assert not matches(token + "x", hashed)
    assert hash_token(token, slow=True, iterations=1000) != hash_token(token, slow=True,
                                                                       iterations=1000)


def test_table_finds_the_user_of_a_token() -> None:
    table = TokenTable([
        TokenEntry(user="alice", hash=hash_token("a-token")),
        TokenEntry(user="bob", hash=hash_token("b-token", slow=True, iterations=1000),
                   admin=True),
    ])
    assert table.lookup("a-token").user == "alice"  # type: ignore[union-attr]
    bob = table.lookup("b-token")
    assert bob is not None and bob.user == "bob" and bob.admin
    assert table.lookup("b-token") is bob  # the slow hash ran once
    assert table.lookup("nope") is None and table.lookup("") is None
    assert not TokenTable([])


@pytest.mark.parametrize(
    "entry",
    [
        {"user": "alice", "hash": "plaintext-token"},
        {"user": "alice", "hash": "sha256:abc"},
        {"user": "al ice", "hash": hash_token("x")},
        {"user": "alice", "hash": hash_token("x"), "extra": 1},
    ],
)
def test_bad_token_entries_are_refused(entry: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        TokenEntry.model_validate(entry)


def test_hash_token_cli_prints_a_usable_entry() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "simfarm.client.cli", "hash-token", "--user", "carol", "--stdin",
         "--group", "em-team", "--account", "em"],
        input="carols-token\n", capture_output=True, text=True, timeout=60, check=True,
        cwd=ROOT,
    )
    env_line = next(x for x in result.stdout.splitlines() if x.startswith("SIMFARM_AUTH_TOKENS="))
    entries = json.loads(env_line.split("=", 1)[1].strip("'"))
    table = TokenTable([TokenEntry.model_validate(e) for e in entries])
    entry = table.lookup("carols-token")
    assert entry is not None and entry.user == "carol"
    assert (entry.groups, entry.account) == (["em-team"], "em")
    assert 'groups = ["em-team"]' in result.stdout and 'account = "em"' in result.stdout
    assert "carols-token" not in result.stdout
