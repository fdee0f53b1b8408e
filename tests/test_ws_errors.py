"""How a failed WebSocket handshake is read by the clients (pure, no network): a gateway
that is restarting is retried; one without WebSocket support makes waiting fall back to
polling; a refused token is an authentication error."""

from __future__ import annotations

from websockets.datastructures import Headers
from websockets.exceptions import InvalidMessage, InvalidStatus
from websockets.http11 import Response

from simfarm.client.base import ws_error
from simfarm.client.flows import RESUMABLE, WsClosed, WsUnavailable


def status(code: int) -> InvalidStatus:
    return InvalidStatus(Response(code, "", Headers(), b'{"error": "x", "detail": "y"}'))


def test_connection_closed_during_the_handshake_is_retried() -> None:
    exc = InvalidMessage("did not receive a valid HTTP response")
    exc.__cause__ = EOFError("connection closed while reading HTTP status line")
    mapped = ws_error(exc)
    assert isinstance(mapped, WsClosed) and mapped.code in RESUMABLE


def test_server_errors_are_retried_other_statuses_mean_no_websocket() -> None:
    for code in (502, 503):
        mapped = ws_error(status(code))
        assert isinstance(mapped, WsClosed) and mapped.code in RESUMABLE
    assert isinstance(ws_error(status(404)), WsUnavailable)
    assert isinstance(ws_error(InvalidMessage("not HTTP at all")), WsUnavailable)


def test_refused_token_is_an_authentication_error() -> None:
    mapped = ws_error(status(401))
    assert not isinstance(mapped, (WsClosed, WsUnavailable))
    assert "y" in str(mapped)
