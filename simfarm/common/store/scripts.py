"""The store's Lua scripts (``lua/*.lua``), loaded with the key names of the key map.

A script never spells a key name. Keys known before the call come in ``KEYS``, built by
:class:`~.keys.Keys`; keys found inside the script (the index of the state a job is in,
the job set of the node it runs on...) are named ``K.<member>`` after a member of
``Keys``: ``K.finished``, ``K.state(state)``, ``K.node_jobs(node)``. The loader prepends
a Lua definition for each member a script uses, generated from ``Keys`` itself with the
store's prefix, so keys.py stays the one place that knows key names (the test
``tests/test_store_keys.py`` refuses a script that names a key another way). Helpers of
``lib.lua`` are prepended to the scripts that call them. Both cost what the string
concatenation written inline would.
"""

from __future__ import annotations

import inspect
import re
from functools import cache
from importlib import resources

import redis
from redis.commands.core import Script

from simfarm.common.store.keys import Keys

_MARKERS = "\x00\x01\x02\x03"
_USES = re.compile(r"\bK\.([A-Za-z_]\w*)")
_LIB_FUNCTION = re.compile(r"^local function (\w+)\(", re.MULTILINE)


@cache
def _text(name: str) -> str:
    return resources.files("simfarm.common.store").joinpath("lua", f"{name}.lua").read_text()


def _lua_string(value: str) -> str:
    """``value`` as a Lua string literal (decimal escapes for anything unusual)."""
    out = []
    for byte in value.encode():
        char = chr(byte)
        out.append(char if char.isalnum() or char in ":_-.,/ @#+=" else f"\\{byte:03d}")
    return "'" + "".join(out) + "'"


def key_names_used(source: str) -> list[str]:
    """The ``Keys`` members a script names as ``K.<member>``, in first-use order."""
    return list(dict.fromkeys(_USES.findall(source)))


def key_definition(keys: Keys, member: str) -> str:
    """The Lua definition of ``K.<member>``: a string for a property of ``Keys``, a
    function of the same arguments for a method. KeyError for a name ``Keys`` lacks."""
    attribute = getattr(type(keys), member, None)
    if isinstance(attribute, property):
        return f"K.{member} = {_lua_string(getattr(keys, member))}"
    if member.startswith("_") or not inspect.isfunction(attribute):
        raise KeyError(f"Lua names K.{member}, which is not a key of the key map (keys.py)")
    names = list(inspect.signature(attribute).parameters)[1:]
    # Each argument is replaced by a marker character: the pieces between them are text.
    markers = _MARKERS[:len(names)]
    pieces = re.split(f"([{markers}])", getattr(keys, member)(*markers))
    parts = [names[markers.index(p)] if len(p) == 1 and p in markers else _lua_string(p)
             for p in pieces if p]
    return f"K.{member} = function({', '.join(names)}) return {' .. '.join(parts)} end"


def source(name: str, keys: Keys) -> str:
    """The full text of script ``name`` as sent to Redis: key definitions and the
    ``lib.lua`` helpers it uses, then the script."""
    body = _text(name)
    lib = _text("lib")
    uses_lib = any(re.search(rf"\b{fn}\(", body) for fn in _LIB_FUNCTION.findall(lib))
    parts = []
    used = key_names_used((lib if uses_lib else "") + body)
    if used:  # first: lib.lua's functions name keys too
        parts.append("local K = {}")
        parts.extend(key_definition(keys, member) for member in used)
    if uses_lib:
        parts.append(lib.rstrip("\n"))
    parts.append(body)
    return "\n".join(parts)


def register(connection: redis.Redis, name: str, keys: Keys) -> Script:
    """Script ``name`` registered on ``connection`` (sent by SHA, loaded on first use)."""
    return connection.register_script(source(name, keys))
