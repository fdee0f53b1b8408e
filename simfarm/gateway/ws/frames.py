"""Ready-made WebSocket frames (RFC 6455, section 5.2) for the fan-out.

The server never masks its frames, so one event's frame is the same bytes for every
client: the hub encodes it once and each session writes it to its socket as is,
instead of framing the same text once per client.
"""

from __future__ import annotations

import struct

_FIN_TEXT = 0x81  # FIN bit + opcode 1 (text), no RSV bits: an uncompressed message


def text_frame(payload: str) -> bytes:
    """One complete, unmasked text frame carrying ``payload``."""
    data = payload.encode("utf-8")
    size = len(data)
    if size < 126:
        header = struct.pack("!BB", _FIN_TEXT, size)
    elif size < 1 << 16:
        header = struct.pack("!BBH", _FIN_TEXT, 126, size)
    else:
        header = struct.pack("!BBQ", _FIN_TEXT, 127, size)
    return header + data
