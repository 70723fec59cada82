from __future__ import annotations

import contextlib
import hashlib
import logging
import uuid
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hogtrace._w3c import RemoteContext, decode, encode, merge_baggage

TRACE = "4bf92f35-77b3-4da6-a3ce-929d0e0e4736"
TRACE_HEX = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa-0ba9-42b7-8c3d-1a2b3c4d5e6f"
TP = f"00-{TRACE_HEX}-00f067aa0ba902b7-01"


class ListHandler(logging.Handler):
    """Keep every record in a list."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextlib.contextmanager
def hogtrace_records() -> Iterator[list[logging.LogRecord]]:
    """Collect records of the hogtrace logger without pytest fixtures (hypothesis-friendly)."""
    handler = ListHandler()
    log = logging.getLogger("hogtrace")
    previous = log.level
    log.addHandler(handler)
    log.setLevel(logging.DEBUG)
    try:
        yield handler.records
    finally:
        log.removeHandler(handler)
        log.setLevel(previous)


class TestEncode:
    def test_uuid_ids(self) -> None:
        """UUID ids give a dashless trace-id, the span's first 16 hex digits, and exact baggage."""
        headers = encode(RemoteContext(TRACE, SPAN))

        assert f"00-{TRACE_HEX}-00f067aa0ba942b7-01" == headers["traceparent"]
        assert (
            f"hogtrace.trace_id={TRACE},hogtrace.span_id={SPAN},hogtrace.sampled=1"
            == headers["baggage"]
        )

    def test_custom_trace_id(self) -> None:
        """A non-UUID trace id gets a SHA-256-derived trace-id and travels unescaped in baggage."""
        headers = encode(RemoteContext("conv-42:turn-1", None))

        digest = hashlib.sha256(b"conv-42:turn-1").hexdigest()
        assert f"00-{digest[:32]}-{digest[:16]}-01" == headers["traceparent"]
        expected = "hogtrace.trace_id=conv-42:turn-1,hogtrace.sampled=1"
        assert expected == headers["baggage"]

    def test_span_none_uses_trace_for_parent(self) -> None:
        """Without a span, the parent-id is derived from the trace id, as for the root span."""
        assert (
            f"00-{TRACE_HEX}-{TRACE_HEX[:16]}-01"
            == encode(RemoteContext(TRACE, None))["traceparent"]
        )

    def test_unsampled(self) -> None:
        """An unsampled context clears the sampled flag in both headers."""
        headers = encode(RemoteContext(TRACE, SPAN, sampled=False))

        assert headers["traceparent"].endswith("-00")
        assert "hogtrace.sampled=0" in headers["baggage"]

    def test_values_are_percent_encoded(self) -> None:
        """Spaces, commas, semicolons, `=`, `%` and non-ASCII characters are percent-encoded."""
        headers = encode(RemoteContext(TRACE, None, session_id="a b,c=d;é%", distinct_id="ü"))

        assert headers["baggage"].endswith(
            "hogtrace.session_id=a%20b%2Cc%3Dd%3B%C3%A9%25,hogtrace.distinct_id=%C3%BC"
        )

    def test_all_zero_ids_are_never_emitted(self) -> None:
        """A nil UUID trace id still gives non-zero W3C ids."""
        nil = str(uuid.UUID(int=0))

        _, trace_hex, parent_hex, _ = encode(RemoteContext(nil, nil))["traceparent"].split("-")

        assert trace_hex.strip("0")
        assert parent_hex.strip("0")

    @pytest.mark.parametrize(("trace_id", "span_id"), [("", None), ("a b", None), (TRACE, "x,y")])
    def test_invalid_ids_raise(self, trace_id: str, span_id: str | None) -> None:
        """An id outside PostHog's alphabet raises ValueError."""
        with pytest.raises(ValueError, match="invalid hogtrace id"):
            encode(RemoteContext(trace_id, span_id))


class TestDecode:
    def test_traceparent_only(self) -> None:
        """A foreign traceparent gives a dashed trace id and the hex parent-id as span id."""
        assert RemoteContext(TRACE, "00f067aa0ba902b7") == decode({"traceparent": TP})

    def test_header_names_are_case_insensitive(self) -> None:
        """Header names match in any case."""
        headers = {k.upper(): v for k, v in encode(RemoteContext("t-1", SPAN)).items()}

        assert RemoteContext("t-1", SPAN) == decode(headers)

    def test_pairs_with_several_baggage_headers(self) -> None:
        """Several baggage headers in a list of pairs are read as one list."""
        headers = [
            ("Traceparent", TP),
            ("baggage", "other=1"),
            ("Baggage", f"hogtrace.trace_id={TRACE}, hogtrace.span_id={SPAN}"),
            ("BAGGAGE", "hogtrace.session_id=s%201 ;prop=x"),
        ]

        assert RemoteContext(TRACE, SPAN, session_id="s 1") == decode(headers)

    def test_bytes_pairs(self) -> None:
        """ASGI-style byte pairs are accepted."""
        assert RemoteContext(TRACE, "00f067aa0ba902b7") == decode([(b"traceparent", TP.encode())])  # type: ignore[list-item]

    def test_baggage_only(self) -> None:
        """Baggage alone carries a context, sampled by default."""
        assert RemoteContext("t-1", None) == decode({"baggage": "hogtrace.trace_id=t-1"})

    @pytest.mark.parametrize(
        "headers", [{}, {"x-other": TP}, {"baggage": "a=1"}, {"baggage": "hogtrace.span_id=s"}]
    )
    def test_no_context(self, headers: dict[str, str]) -> None:
        """Headers without a trace give None."""
        assert None is decode(headers)

    def test_baggage_wins_over_rewritten_parent(self) -> None:
        """When an intermediary rewrote the parent-id, the baggage span id still wins."""
        headers = {"traceparent": TP, "baggage": f"hogtrace.trace_id={TRACE},hogtrace.span_id=s1"}

        assert RemoteContext(TRACE, "s1") == decode(headers)

    def test_baggage_wins_over_a_rewritten_traceparent(self) -> None:
        """Baggage whose trace id differs from a rewritten traceparent wins."""
        other = str(uuid.uuid4())
        headers = {
            "traceparent": TP,
            "baggage": f"hogtrace.trace_id={other},hogtrace.span_id=s1,hogtrace.sampled=0,"
            "hogtrace.session_id=conv",
        }

        expected = RemoteContext(other, "s1", session_id="conv", sampled=False)
        assert expected == decode(headers)

    def test_invalid_baggage_trace_id(self, caplog: pytest.LogCaptureFixture) -> None:
        """A baggage trace id outside PostHog's alphabet gives None, with a warning."""
        assert None is decode({"traceparent": TP, "baggage": "hogtrace.trace_id=a%20b"})
        expected = [logging.WARNING]
        assert expected == [r.levelno for r in caplog.records]

    @pytest.mark.parametrize(
        "traceparent",
        [
            "",
            "garbage",
            TP[:-1],
            TP + "0",
            TP + "-extra",
            TP.upper(),
            f"00-{TRACE_HEX.upper()}-00f067aa0ba902b7-01",
            f"00-{'0' * 32}-00f067aa0ba902b7-01",
            f"00-{TRACE_HEX}-{'0' * 16}-01",
            f"00-{TRACE_HEX}-00f067aa0ba902b7-1",
            f"00-{TRACE_HEX}-00f067aa0ba902b7-zz",
            f"ff-{TRACE_HEX}-00f067aa0ba902b7-01",
            f"0-{TRACE_HEX}-00f067aa0ba902b7-01",
            f"01-{TRACE_HEX}-00f067aa0ba902b7-01x",
            f"00_{TRACE_HEX}_00f067aa0ba902b7_01",
            "00-" + "a" * 1000,
        ],
    )
    def test_malformed_traceparent(
        self, traceparent: str, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A malformed traceparent is ignored with a debug log, falling back to baggage."""
        caplog.set_level(logging.DEBUG, logger="hogtrace")
        baggage = "hogtrace.trace_id=t-1,hogtrace.span_id=s1"

        assert None is decode({"traceparent": traceparent})
        assert RemoteContext("t-1", "s1") == decode(
            {"traceparent": traceparent, "baggage": baggage}
        )
        assert "malformed traceparent" in caplog.text

    def test_future_version_reads_four_fields(self) -> None:
        """A traceparent of a later version is read up to its fourth field."""
        assert RemoteContext(TRACE, "00f067aa0ba902b7", sampled=False) == decode(
            {"traceparent": f"cc-{TRACE_HEX}-00f067aa0ba902b7-02-what-ever"}
        )

    def test_surrounding_whitespace(self) -> None:
        """Whitespace around a traceparent is ignored."""
        assert RemoteContext(TRACE, "00f067aa0ba902b7") == decode({"traceparent": f" {TP}\t"})

    def test_two_traceparents_are_invalid(self) -> None:
        """Two traceparent headers make the traceparent invalid."""
        assert None is decode([("traceparent", TP), ("traceparent", TP)])

    def test_sampled_flag(self) -> None:
        """The sampled flag comes from baggage, else from the traceparent flags."""
        unsampled_tp = TP[:-2] + "00"
        bag = f"hogtrace.trace_id={TRACE},hogtrace.sampled="

        expected = [False, True, False, False]
        assert expected == [
            decode({"traceparent": unsampled_tp}).sampled,  # type: ignore[union-attr]
            decode({"traceparent": unsampled_tp, "baggage": bag + "1"}).sampled,  # type: ignore[union-attr]
            decode({"traceparent": TP, "baggage": bag + "0"}).sampled,  # type: ignore[union-attr]
            decode({"traceparent": unsampled_tp, "baggage": bag + "yes"}).sampled,  # type: ignore[union-attr]
        ]

    def test_invalid_span_id_is_dropped(self) -> None:
        """A baggage span id outside PostHog's alphabet is dropped; the trace is kept."""
        assert RemoteContext("t-1", None) == decode(
            {"baggage": "hogtrace.trace_id=t-1,hogtrace.span_id=a%2Cb"}
        )

    def test_non_utf8_member_is_ignored(self) -> None:
        """A member whose percent-encoding is not UTF-8 is ignored."""
        assert RemoteContext("t-1", None) == decode(
            {"baggage": "hogtrace.trace_id=t-1,hogtrace.session_id=%FF"}
        )

    def test_first_member_wins(self) -> None:
        """When a key repeats, its first occurrence wins."""
        assert RemoteContext("t-1", None) == decode(
            {"baggage": "hogtrace.trace_id=t-1,hogtrace.trace_id=t-2"}
        )

    def test_baggage_is_truncated_at_limit(self) -> None:
        """Baggage beyond 8192 bytes is dropped at a member boundary."""
        filler = "x=" + "y" * 8200

        assert [RemoteContext("t-1", None), None] == [
            decode([("baggage", "hogtrace.trace_id=t-1"), ("baggage", filler)]),
            decode([("baggage", filler), ("baggage", "hogtrace.trace_id=t-1")]),
        ]

    @pytest.mark.parametrize(
        "headers", [None, 42, "traceparent", [1, 2], [("baggage", None)], {"baggage": ["x"]}]
    )
    def test_garbage_never_raises(self, headers: object) -> None:
        """Input of the wrong type gives None instead of raising."""
        assert None is decode(headers)  # type: ignore[arg-type]


class TestMergeBaggage:
    def test_no_existing(self) -> None:
        """Without existing baggage the result is ours."""
        ours = "hogtrace.trace_id=t"

        assert ours == merge_baggage(None, ours)

    def test_keeps_foreign_members_and_replaces_ours(self) -> None:
        """Foreign members are kept after ours; stale hogtrace members are dropped."""
        existing = "userId=alice, hogtrace.trace_id=old,hogtrace.session_id=old;p=1,,isProd=false"

        expected = "hogtrace.trace_id=t,userId=alice,isProd=false"
        assert expected == merge_baggage(existing, "hogtrace.trace_id=t")

    def test_empty_ours(self) -> None:
        """Empty ours leaves only the foreign members."""
        expected = "a=1"
        assert expected == merge_baggage("a=1,hogtrace.span_id=s", "")

    def test_merged_headers_decode(self) -> None:
        """A context injected into headers with foreign baggage decodes unchanged."""
        ctx = RemoteContext(TRACE, SPAN, session_id="conv 1")
        headers = encode(ctx)
        headers["baggage"] = merge_baggage("k=v,hogtrace.distinct_id=stale", headers["baggage"])

        assert ctx == decode(headers)


ids = st.one_of(
    st.uuids().map(str),
    st.from_regex(r"[0-9a-f]{16}|[0-9a-f]{32}", fullmatch=True),
    st.from_regex(r"[A-Za-z0-9\-_~.@()!':|]+", fullmatch=True),
)
contexts = st.builds(
    RemoteContext,
    trace_id=ids,
    span_id=st.none() | ids,
    session_id=st.none() | st.text(min_size=1),
    distinct_id=st.none() | st.text(min_size=1),
    sampled=st.booleans(),
)
header_names = (
    st.sampled_from(["traceparent", "TraceParent", "baggage", "Baggage", "x"]) | st.text()
)
header_values = st.one_of(
    st.text(),
    st.from_regex(r"[0-9a-f]{2}-[0-9a-fA-F]{32}-[0-9a-f]{16}-[0-9a-f]{2}(-.*)?", fullmatch=True),
    contexts.map(lambda ctx: encode(ctx)["baggage"]) | st.text().map("hogtrace.trace_id=".__add__),
)


class TestProperties:
    @given(
        st.dictionaries(header_names, header_values)
        | st.lists(st.tuples(header_names, header_values))
    )
    def test_decode_never_raises(self, headers: dict[str, str] | list[tuple[str, str]]) -> None:
        """Decode returns a context or None for arbitrary headers, without hitting its guard."""
        with hogtrace_records() as records:
            result = decode(headers)

        assert result is None or isinstance(result, RemoteContext)
        assert not [r for r in records if r.exc_info]

    @given(contexts)
    def test_round_trip(self, ctx: RemoteContext) -> None:
        """Encode then decode gives back any valid context."""
        assert ctx == decode(encode(ctx))

    @given(
        st.uuids(), st.none() | ids, st.booleans(), st.sampled_from(["traceparent", "TRACEPARENT"])
    )
    def test_traceparent_alone_carries_uuid_trace(
        self, trace: uuid.UUID, span_id: str | None, sampled: bool, name: str
    ) -> None:
        """The traceparent alone carries a UUID trace id and the sampling decision."""
        headers = encode(RemoteContext(str(trace), span_id, sampled=sampled))

        expected = RemoteContext(str(trace), headers["traceparent"][36:52], sampled=sampled)
        assert expected == decode({name: headers["traceparent"]})
