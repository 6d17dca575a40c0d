"""Opaque pagination cursors: a kind prefix and a position, base64url-encoded.

Opaque so that clients resume from what the node gave them rather than doing arithmetic on it;
checked strictly on the way back, so a forged or foreign cursor is a clear 400, never a 500.
"""

from __future__ import annotations

import base64
import binascii

from gateway.errors import BadRequest

# A position beyond 18 digits would overflow the database's 64-bit integer.
_MAX_DIGITS = 18


def encode_cursor(kind: str, position: int) -> str:
    return base64.urlsafe_b64encode(f"{kind}:{position}".encode()).decode().rstrip("=")


def decode_cursor(kind: str, cursor: str) -> int:
    """The position in a cursor of this kind; BadRequest for anything this node did not issue."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise BadRequest("The cursor is not one this node issued.") from exc
    prefix, _, number = raw.partition(":")
    # ASCII digits only: "²".isdigit() is true, but int() refuses it.
    if prefix != kind or not (number.isascii() and number.isdigit()) or len(number) > _MAX_DIGITS:
        raise BadRequest("The cursor is not one this node issued.")
    return int(number)
