"""Input checks shared by the domain's public methods, and the opaque paging cursors.

The API validates its bodies with pydantic, but the CLI, ingest and tests call the domain
directly, so the domain checks again and answers every bad input with a `WorkflowError(422)`
the API can pass through unchanged.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from datetime import datetime
from enum import StrEnum
from typing import Any, TypeVar

from central.workflow import WorkflowError
from gridwatch.contract.base import ID_PATTERN

MAX_NOTE = 2000
MAX_LIMIT = 500
_ID = re.compile(ID_PATTERN)
E = TypeVar("E", bound=StrEnum)

_BAD_CURSOR = "cursor is not one this server gave out"


def require_aware(name: str, value: datetime | None) -> None:
    """Refuse naive datetimes: the store keeps UTC and cannot guess the caller's zone."""
    if value is not None and (not isinstance(value, datetime) or value.tzinfo is None):
        raise WorkflowError(422, f"`{name}` must be an aware datetime")


def check_note(note: str | None, *, required: bool = False, name: str = "note") -> str | None:
    """A free-text field: at most MAX_NOTE characters; when `required`, not blank."""
    if note is not None and len(note) > MAX_NOTE:
        raise WorkflowError(422, f"`{name}` is longer than {MAX_NOTE} characters")
    if required and not (note and note.strip()):
        raise WorkflowError(422, f"`{name}` must not be empty")
    return note


def check_id(kind: str, value: str) -> str:
    """An id as the contract's ID_PATTERN allows (the whole string, so no trailing newline)."""
    # fullmatch: with re.match, `$` also matches before a final "\n", so "op-li\n" used to pass
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise WorkflowError(422, f"{kind} {value!r} is not a valid id")
    return value


def check_limit(limit: int) -> int:
    """A page size: 1..MAX_LIMIT, so one request cannot read a whole table."""
    if not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise WorkflowError(422, f"`limit` must be 1..{MAX_LIMIT}")
    return limit


def parse_enum(enum: type[E], name: str, value: E | str | None) -> E | None:
    """`value` as a member of `enum` (None stays None); 422 naming the choices otherwise."""
    if value is None:
        return None
    try:
        return enum(value)
    except ValueError:
        choices = ", ".join(m.value for m in enum)
        raise WorkflowError(422, f"`{name}` must be one of {choices}, got {value!r}") from None


def encode_cursor(data: dict[str, Any]) -> str:
    """An opaque paging cursor (url-safe base64 of compact JSON, padding stripped)."""
    return base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> dict[str, Any]:
    """The inverse of `encode_cursor`; 422 for anything this server did not give out."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise WorkflowError(422, _BAD_CURSOR) from None
    if not isinstance(data, dict):
        raise WorkflowError(422, _BAD_CURSOR)
    return data
