"""One feed line -> one :class:`~csassist.core.types.Message`: the validation every intake shares.

The JSONL sources (:mod:`csassist.core.io.sources`), the demo replay and the HTTP intake
(:mod:`csassist.core.io.listen`) all call :func:`parse_message`, so every feed accepts exactly the
same messages and refuses the rest with the same reasons.

Line format (JSON Lines, one object per line, UTF-8)::

    {"conversation_id": "c-1042", "text": "Where is my order?"}                      # minimal
    {"conversation_id": "c-1042", "speaker": "customer", "text": "...", "customer": "Ana",
     "delay": 2.5, "ts": 1764300000.0}                                             # full

``speaker`` defaults to ``"customer"`` (``"agent"`` is the other choice), ``delay`` (demo replay) is
the number of seconds after the previous line, ``ts`` is epoch seconds or an ISO-8601 string
(a time without a zone is taken as UTC).  Unknown keys are ignored so feeds can carry extra data.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

from csassist.core.sanitize import is_terminal_safe
from csassist.core.textnorm import normalize_text
from csassist.core.types import Message, Speaker

#: Longest accepted conversation id (ids are shown in lists and used as keys).
MAX_CONVERSATION_ID_CHARS = 200
#: Epoch values are read by magnitude: seconds below 1e11 (year 5138), then milliseconds, microseconds
#: and nanoseconds; each band is three orders of magnitude wide.
_EPOCH_UNITS: tuple[tuple[float, float], ...] = ((1e11, 1.0), (1e14, 1e3), (1e17, 1e6), (1e20, 1e9))
#: Latest accepted time: the end of year 9999, the last one ``datetime`` can show.
MAX_TS = 253402300799.0


def parse_timestamp(value: object) -> float:
    """Epoch seconds from a number or an ISO-8601 string; raises ``ValueError`` with a reason.

    Feeds disagree on time formats, so both are accepted, and a number is read by its magnitude as
    epoch seconds, milliseconds (JavaScript), microseconds or nanoseconds (Go).  A zone-less ISO time
    is read as UTC so the result does not depend on the machine's locale.  Anything else - negative,
    not finite, beyond year 9999 (``1e300`` crashed the UI's clock) - is refused here, at intake.
    """
    if isinstance(value, bool):
        raise ValueError("'ts' must be epoch seconds or an ISO-8601 string, not a boolean")
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"'ts' must be a finite number, got {value!r}")
        if value < 0:
            raise ValueError(f"'ts' must not be negative, got {_short(value)}")
        for limit, per_second in _EPOCH_UNITS:
            if value < limit:
                return _in_range(value / per_second, value)
        raise ValueError(
            f"'ts' {_short(value)} is too large for epoch seconds, milliseconds, microseconds or nanoseconds"
        )
    if isinstance(value, str):
        text = value.strip()
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"'ts' is not an ISO-8601 time: {value[:60]!r}") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        try:
            seconds = parsed.timestamp()
        except (OverflowError, ValueError, OSError):
            raise ValueError(f"'ts' is out of range: {value[:60]!r}") from None
        return _in_range(seconds, value)
    raise ValueError(f"'ts' must be epoch seconds or an ISO-8601 string, got {type(value).__name__}")


def _short(value: object) -> str:
    """A value for an error message, cut so a 5,000-digit number does not flood the report."""
    text = repr(value) if not isinstance(value, int) or value.bit_length() < 1000 else f"<{value.bit_length()}-bit int>"
    return text if len(text) <= 40 else text[:37] + "..."


def _in_range(seconds: float, original: object) -> float:
    """``seconds`` when it is a time the UI can show (1970 to 9999), else ``ValueError``."""
    if not 0.0 <= seconds <= MAX_TS:
        raise ValueError(f"'ts' {_short(original)} is outside 1970-9999")
    return seconds


def _conversation_id(value: object) -> str:
    """A usable conversation id (strings, or integers that some systems send) or ``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ValueError("'conversation_id' must be a string")
    cid = str(value).strip()
    if not cid:
        raise ValueError("'conversation_id' is empty")
    if len(cid) > MAX_CONVERSATION_ID_CHARS:
        raise ValueError(f"'conversation_id' is longer than {MAX_CONVERSATION_ID_CHARS} characters")
    if not is_terminal_safe(cid):
        raise ValueError("'conversation_id' contains control characters")
    return cid


def parse_message(
    obj: object,
    *,
    allow_speaker: bool = True,
    allow_delay: bool = True,
    default_ts: float = 0.0,
) -> Message:
    """Validate one decoded JSON object and build a :class:`Message`; ``ValueError`` says what is wrong.

    Shared by every source and the HTTP intake so that all feeds accept exactly the same messages.
    ``allow_speaker``/``allow_delay`` are off for the HTTP API, which only takes customer messages.
    """
    if not isinstance(obj, dict):
        raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
    if "conversation_id" not in obj:
        raise ValueError("missing 'conversation_id'")
    cid = _conversation_id(obj["conversation_id"])
    if "text" not in obj:
        raise ValueError("missing 'text'")
    text = obj["text"]
    if not isinstance(text, str):
        raise ValueError("'text' must be a string")
    text = normalize_text(text)  # before the emptiness check: a text of NULs is empty
    if not text.strip():
        raise ValueError("'text' is empty")
    raw_speaker = obj.get("speaker", "customer") if allow_speaker else "customer"
    if raw_speaker == "customer":
        speaker: Speaker = "customer"
    elif raw_speaker == "agent":
        speaker = "agent"
    else:
        raise ValueError(f"'speaker' must be 'customer' or 'agent', got {str(raw_speaker)[:40]!r}")
    customer = obj.get("customer")
    if customer is not None and not isinstance(customer, str):
        raise ValueError("'customer' must be a string")
    if customer is not None:
        customer = customer.strip() or None
    delay = 0.0
    if allow_delay and obj.get("delay") is not None:
        raw_delay = obj["delay"]
        if isinstance(raw_delay, bool) or not isinstance(raw_delay, (int, float)):
            raise ValueError("'delay' must be a number of seconds")
        if not math.isfinite(raw_delay) or raw_delay < 0:
            raise ValueError(f"'delay' must be a finite, non-negative number, got {raw_delay!r}")
        delay = float(raw_delay)
    ts = parse_timestamp(obj["ts"]) if obj.get("ts") is not None else default_ts
    return Message(conversation_id=cid, speaker=speaker, text=text, ts=ts, customer=customer, delay=delay)
