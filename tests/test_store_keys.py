"""The store is the only code that knows Redis keys: every key is built by ``Keys`` and
documented in the key map of keys.py, the Lua scripts name keys only through it, and no
module outside simfarm/common/store sends Redis commands of its own."""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import fakeredis
import pytest

from simfarm.common.models import JobSpec
from simfarm.common.states import JobState
from simfarm.common.store import JobStore, scripts
from simfarm.common.store import keys as keys_module
from simfarm.common.store.keys import Keys
from tests.helpers import ROOT

STORE = ROOT / "simfarm" / "common" / "store"
LUA = sorted((STORE / "lua").glob("*.lua"))


def documented_patterns() -> list[re.Pattern[str]]:
    """The key map table of keys.py, each ``P name:<part>`` (or ``<part>``: a key of
    Celery's, outside the prefix) as a pattern."""
    doc = keys_module.__doc__ or ""
    rows = re.findall(r"^``(P [^`]+|<[^`]+>)``", doc, re.MULTILINE)
    assert len(rows) > 20, "the key map table of keys.py was not found"
    return [re.compile("^" + re.sub(r"<[^>]+>", "[^:]+", re.escape(r).replace(r"\<", "<")
                                    .replace(r"\>", ">")) + "$") for r in rows]


def key_members() -> dict[str, str]:
    """Every key ``Keys`` builds, by member name, with ``X`` for each argument."""
    keys = Keys("P ")
    out: dict[str, str] = {}
    for name, attribute in vars(Keys).items():
        if name.startswith("_") or name == "prefix":
            continue
        if isinstance(attribute, property):
            out[name] = getattr(keys, name)
        elif inspect.isfunction(attribute):
            arguments = len(inspect.signature(attribute).parameters) - 1
            out[name] = getattr(keys, name)(*["X"] * arguments)
    return out


def lua_key_problems(source: str) -> list[str]:
    """What in a Lua script names a key other than through ``KEYS`` or ``K.<member>``."""
    code = re.sub(r"--[^\n]*", "", source)  # comments may talk about keys
    problems = [f"K.{m} is not a key of keys.py" for m in scripts.key_names_used(code)
                if m not in key_members()]
    problems += [f"string {s!r} spells a key" for s in re.findall(r"'[^']*'|\"[^\"]*\"", code)
                 if ":" in s]
    if re.search(r"\bprefix\b", code):
        problems.append("builds key names from a prefix")
    return problems


def test_every_key_is_in_the_key_map_and_every_entry_has_a_builder() -> None:
    patterns = documented_patterns()
    built = key_members()
    for name, key in built.items():
        assert any(p.match(key) for p in patterns), f"Keys.{name} ({key}) is not documented"
    for pattern in patterns:
        assert any(pattern.match(k) for k in built.values()), \
            f"{pattern.pattern} is documented but no Keys member builds it"


@pytest.mark.parametrize("path", LUA, ids=[p.name for p in LUA])
def test_lua_scripts_name_keys_only_through_the_key_map(path: Path) -> None:
    assert lua_key_problems(path.read_text()) == []


def test_the_lua_check_refuses_a_script_that_names_its_own_keys() -> None:
    assert lua_key_problems("redis.call('ZADD', ARGV[2] .. 'state:pending', 1, ARGV[1])")
    assert lua_key_problems("redis.call('SADD', K.secret_index, ARGV[1])")
    assert lua_key_problems("local prefix = ARGV[2]")
    assert lua_key_problems("redis.call('ZADD', K.state('pending'), 1, ARGV[1])") == []


def test_generated_key_names_match_the_python_ones() -> None:
    # The prefix is a setting: quotes and backslashes in it must not break the scripts.
    keys = Keys("odd'pre\\fix:1")
    assert scripts.key_definition(keys, "node_jobs") == (
        r"K.node_jobs = function(name) return 'odd\039pre\092fix:1node:' .. name .. ':jobs' end")
    assert scripts.key_definition(keys, "stats_series") == (
        r"K.stats_series = function(tier, name) return 'odd\039pre\092fix:1stats:' .. tier .. ':'"
        " .. name end")
    assert scripts.key_definition(keys, "finished") == r"K.finished = 'odd\039pre\092fix:1finished'"
    with pytest.raises(KeyError):
        scripts.key_definition(keys, "nope")
    jobs = JobStore(fakeredis.FakeRedis(), keys.prefix)
    job, _ = jobs.create(JobSpec(argv=["true"]))
    jobs.transition(job.id, JobState.SCHEDULED, new_attempt=True, fields={"node": "n1"})
    assert jobs.connection.smembers(keys.node_jobs("n1")) == {job.id.encode()}
    jobs.request_cancel(job.id)
    assert jobs.ids_in_state(JobState.CANCELLED) == [job.id]
    assert jobs.connection.zscore(keys.finished, job.id) is not None


REDIS_COMMANDS = {
    "get", "set", "delete", "exists", "incr", "incrby", "expire", "pexpire", "hget", "hset",
    "hmget", "hgetall", "hdel", "hincrby", "sadd", "srem", "smembers", "spop", "zadd", "zrem",
    "zrange", "zrangebyscore", "zrevrangebyscore", "zcard", "zscore", "xadd", "xread",
    "xrange", "xrevrange", "lpush", "blpop", "ltrim", "eval", "evalsha", "register_script",
    "pipeline", "scan", "keys", "publish", "flushdb", "flushall",
}


def test_no_module_outside_the_store_sends_redis_commands() -> None:
    found = []
    for path in sorted((ROOT / "simfarm").rglob("*.py")):
        if STORE in path.parents:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == "simfarm.common.store.keys":
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} imports the key map")
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute)
                    and node.value.attr == "keys" and node.attr != "prefix"):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} {ast.unparse(node)}")
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in REDIS_COMMANDS
                    and re.search(r"redis|connection", ast.unparse(node.func.value))):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} {ast.unparse(node.func)}")
    assert found == []
