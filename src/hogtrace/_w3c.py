"""Encode and decode a hogtrace context as W3C Trace Context and Baggage headers.

``traceparent`` lets W3C-aware systems (OpenTelemetry, proxies, APMs) see one consistent trace.
``baggage`` carries hogtrace's exact ids, which rarely fit W3C's hex fields. An intermediary
that starts its own span rewrites the parent-id but forwards baggage unchanged, so the baggage
span id still names the caller's hogtrace span: the parent PostHog needs. Pure: no contextvars.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import re
import uuid
from collections.abc import Iterable, Mapping
from typing import cast
from urllib.parse import quote, unquote

__all__ = ["BAGGAGE_SAFE", "RemoteContext", "decode", "encode", "merge_baggage", "parse_baggage"]

logger = logging.getLogger("hogtrace")

TRACE_KEY = "hogtrace.trace_id"
SPAN_KEY = "hogtrace.span_id"
SAMPLED_KEY = "hogtrace.sampled"
SESSION_KEY = "hogtrace.session_id"
DISTINCT_KEY = "hogtrace.distinct_id"
_KEYS = frozenset({TRACE_KEY, SPAN_KEY, SAMPLED_KEY, SESSION_KEY, DISTINCT_KEY})
_PREFIX = "hogtrace."
# W3C baggage-octets left unescaped, minus "%" (our escape) and "=" (some parsers split on it).
BAGGAGE_SAFE = "!#$&'()*+-./:<>?@[]^_`{|}~"
# W3C Baggage's 8192-byte limit: we read no more, so a hostile header costs us little.
_MAX_BAGGAGE = 8192
_MAX_TRACEPARENT = 512
_OWS = " \t"
_ID_RE = re.compile(r"[A-Za-z0-9\-_~.@()!':|]+")
_UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_HEX_RE = re.compile(r"[0-9a-f]+")
_TRACEPARENT_RE = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")


@dataclasses.dataclass(frozen=True, slots=True)
class RemoteContext:
    """The part of a hogtrace context that crosses a process boundary.

    Attributes:
        trace_id: The PostHog ``$ai_trace_id``. It may use letters, digits and ``-_~.@()!':|``.
        span_id: The caller's current ``$ai_span_id``. It is ``None`` when only the trace is known.
        session_id: The ``$ai_session_id``, if the caller is inside a session.
        distinct_id: The caller's distinct id, if it has one.
        sampled: The caller's sampling decision.
    """

    trace_id: str
    span_id: str | None
    session_id: str | None = None
    distinct_id: str | None = None
    sampled: bool = True


def is_valid_id(value: str) -> bool:
    """Return whether ``value`` is a valid PostHog trace id (letters, digits, ``-_~.@()!':|``)."""
    return _ID_RE.fullmatch(value) is not None


def _w3c_hex(value: str, width: int) -> str:
    """Map a hogtrace id to a W3C id of ``width`` hex digits that is never all zeros.

    A UUID loses its dashes, and a lowercase hex id is kept (truncated to ``width``). Any other
    id becomes a prefix of its SHA-256, so every W3C system derives the same id from it.
    """
    plain = value.replace("-", "") if _UUID_RE.fullmatch(value) else value
    head = plain[:width]
    if len(head) == width and head.strip("0") and _HEX_RE.fullmatch(plain):
        return head
    return hashlib.sha256(value.encode()).hexdigest()[:width]


def encode(ctx: RemoteContext) -> dict[str, str]:
    """Return the headers that carry ``ctx``: a version-00 ``traceparent`` and a ``baggage``.

    The traceparent ids come from ``_w3c_hex``. Baggage carries the exact ids, percent-encoded.
    It names only hogtrace members; use `merge_baggage` to keep other members already present.
    Empty strings count as absent.

    Args:
        ctx: The context to carry.

    Returns:
        A dict with ``traceparent`` and ``baggage`` keys.

    Raises:
        ValueError: If ``ctx.trace_id`` or ``ctx.span_id`` is not a valid PostHog id.
    """
    for value in (ctx.trace_id, ctx.span_id):
        if value is not None and not is_valid_id(value):
            raise ValueError(f"invalid hogtrace id: {value!r}")
    parent = _w3c_hex(ctx.trace_id if ctx.span_id is None else ctx.span_id, 16)
    flags = "01" if ctx.sampled else "00"
    # Members that must survive come first: a reader may drop the tail of a long baggage header.
    members = (
        (TRACE_KEY, ctx.trace_id),
        (SPAN_KEY, ctx.span_id),
        (SAMPLED_KEY, "1" if ctx.sampled else "0"),
        (SESSION_KEY, ctx.session_id),
        (DISTINCT_KEY, ctx.distinct_id),
    )
    return {
        "traceparent": f"00-{_w3c_hex(ctx.trace_id, 32)}-{parent}-{flags}",
        "baggage": ",".join(
            f"{key}={quote(value, safe=BAGGAGE_SAFE, errors='replace')}"
            for key, value in members
            if value
        ),
    }


def merge_baggage(existing: str | None, ours: str) -> str:
    """Return ``ours`` followed by the members of ``existing`` outside the ``hogtrace.`` namespace.

    Stale ``hogtrace.*`` members are dropped, even keys that ``ours`` leaves out, so they cannot
    leak into the new context. Our members come first so that a reader truncating at 8192 bytes
    keeps them.

    Args:
        existing: The ``baggage`` header already present, if any.
        ours: The ``baggage`` value from `encode`.

    Returns:
        The merged ``baggage`` header value.
    """
    others = [
        member.strip(_OWS)
        for member in (existing or "").split(",")
        if member.strip(_OWS) and not member.partition("=")[0].strip(_OWS).startswith(_PREFIX)
    ]
    return ",".join([ours, *others] if ours else others)


def _text(value: object) -> str | None:
    """Return a header name or value as text: ``str`` as is, ``bytes`` (ASGI) as latin-1."""
    if isinstance(value, bytes):
        return value.decode("latin-1")
    return value if isinstance(value, str) else None


def _parse_traceparent(value: str) -> tuple[str, str, bool] | None:
    """Return ``(trace_hex, parent_hex, sampled)`` from a traceparent, or ``None`` if malformed."""
    value = value.strip(_OWS)
    match = _TRACEPARENT_RE.match(value) if len(value) <= _MAX_TRACEPARENT else None
    if match is None:
        return None
    version, trace_hex, parent_hex, flags = match.groups()
    # W3C Trace Context: version ff is invalid, and 00 has exactly four fields. A later version
    # may append fields after a "-". We read its first four fields and ignore the rest.
    if version == "ff" or (len(value) != 55 if version == "00" else value[55:56] not in ("", "-")):
        return None
    if not trace_hex.strip("0") or not parent_hex.strip("0"):
        return None
    return trace_hex, parent_hex, bool(int(flags, 16) & 1)


def parse_baggage(raw: str) -> dict[str, str]:
    """Return the decoded hogtrace members of a baggage value; a key's first occurrence wins."""
    if len(raw) > _MAX_BAGGAGE:
        logger.debug("hogtrace: baggage longer than %d bytes, truncated", _MAX_BAGGAGE)
        cut = raw.rfind(",", 0, _MAX_BAGGAGE + 1)  # drop the member that the limit cuts in half
        raw = raw[:cut] if cut >= 0 else ""
    found: dict[str, str] = {}
    for member in raw.split(","):
        key, sep, value = member.partition(";")[0].partition("=")
        key = key.strip(_OWS)
        if sep and key in _KEYS and key not in found:
            try:
                found[key] = unquote(value.strip(_OWS), errors="strict")
            except UnicodeDecodeError:
                logger.debug("hogtrace: ignoring baggage member %s: not UTF-8", key)
    return found


def decode(headers: Mapping[str, str] | Iterable[tuple[str, str]]) -> RemoteContext | None:
    """Read a hogtrace context from ``traceparent`` and ``baggage`` headers.

    Header names are case-insensitive, and several ``baggage`` headers are joined. If hogtrace
    baggage is present, its ids win, also when another tracer rewrote the traceparent after
    ``inject()``. A traceparent alone gives a dashed UUID trace id
    and its hex parent-id as the span id. Malformed input is logged on the ``hogtrace`` logger.

    Args:
        headers: A mapping, or ``(name, value)`` pairs such as WSGI/ASGI header lists.

    Returns:
        The remote context, or ``None`` when the headers carry no usable context. It never raises.
    """
    try:
        return _decode(headers)
    except Exception:  # untrusted input must never break the host program
        logger.warning("hogtrace: could not decode trace headers", exc_info=True)
        return None


def _decode(headers: Mapping[str, str] | Iterable[tuple[str, str]]) -> RemoteContext | None:
    items = headers.items() if isinstance(headers, Mapping) else headers
    traceparents: list[str] = []
    baggage: list[str] = []
    size = 0
    for raw_name, raw_value in cast("Iterable[tuple[object, object]]", items):
        name, value = _text(raw_name), _text(raw_value)
        if name is None or value is None or len(name) not in (7, 11):
            continue
        name = name.lower()
        if name == "traceparent":
            traceparents.append(value)
        elif name == "baggage" and size <= _MAX_BAGGAGE:
            baggage.append(value[: _MAX_BAGGAGE + 1])
            size += len(value) + 1
    # W3C Trace Context: several traceparent headers make the traceparent invalid.
    tp = _parse_traceparent(traceparents[0]) if len(traceparents) == 1 else None
    if traceparents and tp is None:
        logger.debug("hogtrace: ignoring malformed traceparent %.200r", traceparents)
    bag = parse_baggage(",".join(baggage))
    trace_id, span_id, sampled_flag = bag.get(TRACE_KEY), bag.get(SPAN_KEY), bag.get(SAMPLED_KEY)
    if trace_id is not None and not is_valid_id(trace_id):
        logger.warning("hogtrace: invalid trace id %.200r in baggage, context ignored", trace_id)
        return None
    if tp is not None and trace_id is None:
        trace_id, span_id, sampled_flag = str(uuid.UUID(hex=tp[0])), tp[1], None
    elif tp is not None and trace_id is not None and _w3c_hex(trace_id, 32) != tp[0]:
        # Another tracer (e.g. OpenTelemetry's HTTP instrumentation) rewrote traceparent after
        # inject(): our own namespaced baggage still names the caller's trace and span.
        logger.debug(
            "hogtrace: traceparent trace-id %s differs from baggage trace id %.200r; using baggage",
            tp[0],
            trace_id,
        )
    if trace_id is None:
        return None
    if span_id is not None and not is_valid_id(span_id):
        logger.debug("hogtrace: ignoring invalid span id %.200r in baggage", span_id)
        span_id = None
    if sampled_flag not in (None, "0", "1"):
        logger.debug("hogtrace: ignoring invalid %s %.20r", SAMPLED_KEY, sampled_flag)
    return RemoteContext(
        trace_id=trace_id,
        span_id=span_id,
        session_id=bag.get(SESSION_KEY) or None,
        distinct_id=bag.get(DISTINCT_KEY) or None,
        sampled=sampled_flag == "1" if sampled_flag in ("0", "1") else (tp is None or tp[2]),
    )
