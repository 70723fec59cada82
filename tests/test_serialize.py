import array
import dataclasses
import datetime
import enum
import json
import math
import random
import sys
import uuid
from collections import OrderedDict, deque, namedtuple
from decimal import Decimal
from types import SimpleNamespace
from typing import Any
from unittest.mock import MagicMock

import pydantic
import pydantic_core
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from hogtrace import _serialize
from hogtrace._limits import fit_event
from hogtrace._serialize import (
    CYCLE_MARKER,
    DICT_TRUNCATION_KEY,
    DICT_TRUNCATION_MARKER,
    LIST_TRUNCATION_MARKER,
    MAX_DEPTH,
    MAX_DEPTH_MARKER,
    MAX_SAFE_INTEGER,
    TRUNCATION_MARKER,
    Deferred,
    Head,
    count_items,
    number_sizes,
    snapshot,
    thaw,
    to_json_safe,
)
from tests.hostile import FakeArray, Hostile, HostileList


class Color(enum.Enum):
    RED = "red"
    BLUE = 2


class Level(enum.IntEnum):
    HIGH = 3


class Number(enum.Enum):
    NUM = 7
    HALF = 0.5


class Message(pydantic.BaseModel):
    role: str
    content: str
    sent: datetime.datetime | None = None


class Blob(pydantic.BaseModel):
    name: str
    data: bytes
    extra: Any = None


@dataclasses.dataclass
class Point:
    x: int
    y: float
    tags: tuple[str, ...] = ()


class Custom:
    def __repr__(self) -> str:
        return "Custom()"


class HostileMapping(dict[str, int]):
    def items(self) -> Any:
        raise RuntimeError("items")


def roundtrip(value: Any) -> Any:
    return json.loads(json.dumps(value, allow_nan=False))


class TestPlainValues:
    def test_plain_payload_is_equal(self) -> None:
        """Plain chat messages come back equal."""
        messages = [{"role": "user", "content": "x" * 500} for _ in range(20)]
        assert messages == to_json_safe(messages)

    def test_result_is_a_fresh_copy(self) -> None:
        """Mutating the caller's list after the snapshot does not change the snapshot."""
        messages = [{"role": "user", "content": "hi"}]
        snapshot = to_json_safe(messages)
        messages.append({"role": "assistant", "content": "yo"})
        messages[0]["content"] = "changed"
        expected = [{"role": "user", "content": "hi"}]
        assert expected == snapshot

    def test_nested_copy_of_slow_path_is_fresh(self) -> None:
        """The slow path also copies, so inner lists are not shared."""
        inner = [1, 2]
        value = {"inner": inner, "blob": b"x"}
        snapshot = to_json_safe(value)
        inner.append(3)
        expected = {"inner": [1, 2], "blob": "<1 bytes>"}
        assert expected == snapshot

    @pytest.mark.parametrize("value", [None, True, False, 0, -5, 2**53 - 1, 1.5, "", "héllo"])
    def test_scalars_pass_through(self, value: Any) -> None:
        """JSON scalars are returned unchanged."""
        assert value == to_json_safe(value)

    def test_tuples_and_sets_become_lists(self) -> None:
        """Tuples, sets, frozensets and deques become lists."""
        value = {"t": (1, "a"), "s": {3}, "f": frozenset({4}), "d": deque([5])}
        expected = {"t": [1, "a"], "s": [3], "f": [4], "d": [5]}
        assert expected == to_json_safe(value)

    def test_ranges_and_dict_views_become_lists(self) -> None:
        """Ranges and dict views become lists, without a repr."""
        mapping = {"a": 1}
        expected = [[0, 1, 2], ["a"], [1], [["a", 1]]]
        assert expected == to_json_safe(
            [range(3), mapping.keys(), mapping.values(), mapping.items()]
        )

    def test_mock_is_repr(self) -> None:
        """A MagicMock, which answers every attribute, is shown by its repr."""
        assert to_json_safe(MagicMock()).startswith("<MagicMock")

    def test_mapping_subclass_becomes_dict(self) -> None:
        """An OrderedDict becomes a plain dict."""
        result = to_json_safe(OrderedDict(a=1))
        expected = {"a": 1}
        assert expected == result
        assert dict is type(result)

    def test_non_str_keys_become_str(self) -> None:
        """Non-string keys become strings, spelled like json.dumps spells them."""
        value = {1: "a", 2.5: "b", None: "c", Color.RED: "e", (1, 2): "f"}
        expected = {"1": "a", "2.5": "b", "null": "c", "red": "e", "(1, 2)": "f"}
        assert expected == to_json_safe(value)

    def test_enum_keys_become_their_values(self) -> None:
        """Enum keys become their values spelled as keys, as enum values already do."""
        expected = {"7": 2, "0.5": 3, "red": 4}
        assert expected == to_json_safe({Number.NUM: 2, Number.HALF: 3, Color.RED: 4})

    def test_namedtuple_keeps_field_names(self) -> None:
        """A namedtuple becomes a dict of its fields, so key-based redaction sees the names."""
        Credentials = namedtuple("Credentials", "user api_key")
        expected = {"creds": {"user": "bob", "api_key": "k"}}
        assert expected == to_json_safe({"creds": Credentials("bob", "k")})

    def test_simple_namespace_keeps_field_names(self) -> None:
        """A SimpleNamespace becomes a dict of its attributes instead of its repr."""
        expected = {"token": "t", "n": [1]}
        assert expected == to_json_safe(SimpleNamespace(token="t", n=(1,)))

    def test_bool_keys_are_json_spelled(self) -> None:
        """Boolean keys become "true" and "false", as in JSON."""
        expected = {"true": 1, "false": 0}
        assert expected == to_json_safe({True: 1, False: 0})

    def test_str_and_int_subclasses_become_exact_types(self) -> None:
        """Subclasses of str and int become plain str and int."""

        class Name(str):
            pass

        class Count(int):
            pass

        result = to_json_safe([Name("a"), Count(3)])
        expected = ["a", 3]
        assert expected == result
        expected = [str, int]
        assert expected == [type(item) for item in result]


class TestIntegers:
    @pytest.mark.parametrize("value", [2**53, -(2**53), 2**70, -(10**30)])
    def test_ints_beyond_javascript_precision_become_strings(self, value: int) -> None:
        """Ints JavaScript cannot hold exactly become their decimal strings, on both paths."""
        expected = [str(value), [str(value), "<1 bytes>"]]
        assert expected == [to_json_safe(value), to_json_safe([value, b"x"])]

    def test_safe_ints_stay_ints(self) -> None:
        """The largest ints JavaScript holds exactly stay ints."""
        expected = [MAX_SAFE_INTEGER, -MAX_SAFE_INTEGER]
        assert expected == to_json_safe([MAX_SAFE_INTEGER, -MAX_SAFE_INTEGER])

    def test_int_too_long_for_str_is_a_marker(self) -> None:
        """An int longer than sys.get_int_max_str_digits() becomes a marker instead of raising."""
        previous = sys.get_int_max_str_digits()
        sys.set_int_max_str_digits(640)
        try:
            result = to_json_safe({"n": 10**1000})
        finally:
            sys.set_int_max_str_digits(previous)
        expected = {"n": f"<int of {(10**1000).bit_length():,} bits>"}
        assert expected == result

    def test_enormous_int_is_a_marker(self) -> None:
        """An int far beyond the str() limit is a marker, whatever the limit is set to."""
        expected = "<int of 100,001 bits>"
        assert expected == to_json_safe(2**100_000)


class TestLongInts:
    """An int of hundreds of digits is printed by the event builder (`thaw`), not the call."""

    @pytest.mark.parametrize(
        "value",
        [
            [10**100 + 7, -(10**300), 2**256, 2**257, -(2**257)],
            {"a": 10**1000, "b": [3, -(10**2000)], "c": 2**14_000 - 1},
            (10**4000, 10**4300),
        ],
        ids=["list", "dict", "tuple"],
    )
    def test_the_event_holds_what_converting_at_once_holds(self, value: Any) -> None:
        """``thaw`` of the copy is the decimal strings `to_json_safe` makes, or its markers."""
        copy, size, walk = snapshot(value, 800_000, 5_000)
        assert walk.deferred
        assert to_json_safe(value) == thaw(copy)
        assert size <= len(json.dumps(thaw(copy)))  # a lower bound

    def test_the_copy_holds_the_int_not_its_string(self) -> None:
        """A long int stays an int (immutable) until the event is built; a short one is printed."""
        copy, _, _ = snapshot([10**1000, 2**255], 800_000, 5_000)
        assert [_serialize.AsText, str] == [type(item) for item in copy]
        assert 10**1000 == copy[0].value

    def test_a_lowered_str_limit_gives_the_marker(self) -> None:
        """An int Python refuses to print when the event is built shows as its size in bits."""
        copy, _, _ = snapshot([10**1000], 800_000, 5_000)
        previous = sys.get_int_max_str_digits()
        sys.set_int_max_str_digits(640)
        try:
            thawed = thaw(copy)
        finally:
            sys.set_int_max_str_digits(previous)
        assert [f"<int of {(10**1000).bit_length():,} bits>"] == thawed

    @pytest.mark.parametrize("digits", [1_000, 3_000, 4_200])
    def test_printing_them_counts_against_max_items(self, digits: int) -> None:
        """Each takes one item more per 2**18 of its digits squared: fewer are kept."""
        value = [10 ** (digits - 1) + i for i in range(5_000)]
        copy, _, walk = snapshot(value, 10_000_000, 5_000)
        kept = len(copy) - 1  # the marker
        each = _serialize._BY_HAND + digits * digits // 2**18
        assert kept == (5_000 - _serialize._BY_HAND) // each + 1  # while items are left
        assert f"…[truncated {5_000 - kept:,} items]" == copy[-1]
        assert walk.cut
        assert [str(n) for n in value[:kept]] == thaw(copy[:-1])

    def test_their_size_counts_in_full(self) -> None:
        """A number is not cut to a common length: a list keeps what the size limit holds."""
        value = [10**1999 + i for i in range(1_000)]  # 2,000 digits each
        copy, _, _ = snapshot(value, 100_000, 1_000_000)
        kept = len(copy) - 1
        assert 48 <= kept <= 51  # ~100,000 / 2,002
        assert f"…[truncated {1_000 - kept:,} items]" == copy[-1]

    def test_in_a_decorated_call(self) -> None:
        """A span's argument of long ints reaches the event as their decimal strings."""
        import hogtrace
        from hogtrace.testing import capture_events

        @hogtrace.span
        def work(numbers: list[int]) -> int:
            return len(numbers)

        numbers = [10**500 + i for i in range(3)]
        with capture_events() as events:
            work(numbers)
        assert {"numbers": [str(n) for n in numbers]} == events[0].input


class TestFloats:
    @pytest.mark.parametrize(
        ("value", "expected"),
        [(math.nan, "NaN"), (math.inf, "Infinity"), (-math.inf, "-Infinity")],
    )
    def test_non_finite_floats_become_strings(self, value: float, expected: str) -> None:
        """NaN and infinities become strings rather than null."""
        assert [expected] == to_json_safe([value])

    def test_nested_non_finite_float(self) -> None:
        """A non-finite float deep in a plain payload is still converted."""
        expected = {"a": [1.0, "Infinity"]}
        assert expected == to_json_safe({"a": [1.0, math.inf]})


class TestBytes:
    @pytest.mark.parametrize(
        "value", [b"abc", bytearray(b"abc"), memoryview(b"abc")], ids=["bytes", "ba", "mv"]
    )
    def test_bytes_become_size_placeholder(self, value: Any) -> None:
        """Bytes-like values become "<N bytes>", never decoded text."""
        expected = {"data": "<3 bytes>"}
        assert expected == to_json_safe({"data": value})

    def test_memoryview_counts_bytes_not_items(self) -> None:
        """A memoryview of 4-byte ints reports its size in bytes."""
        view = memoryview(array.array("i", [1, 2]))
        expected = f"<{view.nbytes} bytes>"
        assert expected == to_json_safe(view)

    def test_bytes_inside_pydantic_model(self) -> None:
        """Bytes inside a pydantic model also become the placeholder."""
        expected = {"name": "n", "data": "<2 bytes>", "extra": None}
        assert expected == to_json_safe(Blob(name="n", data=b"\xff\xfe"))

    def test_bytes_inside_dataclass(self) -> None:
        """Bytes inside a dataclass field become the placeholder."""
        expected = {"x": 1, "y": "<1 bytes>", "tags": []}
        assert expected == to_json_safe(Point(1, b"z", ()))  # type: ignore[arg-type]


class TestKnownTypes:
    def test_pydantic_model(self) -> None:
        """A pydantic model becomes its dumped dict, with datetimes in ISO format."""
        message = Message(role="user", content="hi", sent=datetime.datetime(2024, 1, 2, 3, 4, 5))
        expected = {"role": "user", "content": "hi", "sent": "2024-01-02T03:04:05"}
        assert expected == to_json_safe(message)

    def test_pydantic_model_with_cycle(self) -> None:
        """A model that contains itself is cut with the cycle marker."""
        blob = Blob(name="n", data=b"")
        blob.extra = blob
        result = to_json_safe(blob)
        assert roundtrip(result) == result
        assert CYCLE_MARKER in json.dumps(result)

    def test_dataclass(self) -> None:
        """A dataclass becomes a dict of its fields."""
        expected = {"x": 1, "y": 2.5, "tags": ["a"]}
        assert expected == to_json_safe(Point(1, 2.5, ("a",)))

    def test_enums(self) -> None:
        """Enums become their values."""
        expected = ["red", 2, 3]
        assert expected == to_json_safe([Color.RED, Color.BLUE, Level.HIGH])

    def test_datetimes(self) -> None:
        """Datetimes, dates and times become ISO strings."""
        value = [
            datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc),
            datetime.date(2024, 1, 2),
            datetime.time(3, 4),
        ]
        expected = ["2024-01-02T03:04:05Z", "2024-01-02", "03:04:00"]
        assert expected == to_json_safe(value)

    def test_datetime_subclass_takes_slow_path(self) -> None:
        """A datetime subclass (as freezegun uses) is also an ISO string."""

        class FakeDatetime(datetime.datetime):
            pass

        expected = ["2024-01-02T00:00:00"]
        assert expected == to_json_safe([FakeDatetime(2024, 1, 2)])

    def test_uuid_and_decimal(self) -> None:
        """UUIDs and Decimals become strings, keeping every digit."""
        value = {"id": uuid.UUID(int=1), "price": Decimal("1.10")}
        expected = {"id": "00000000-0000-0000-0000-000000000001", "price": "1.10"}
        assert expected == to_json_safe(value)

    def test_tolist_objects(self) -> None:
        """Objects with tolist() (numpy-like) become lists."""
        expected = {"a": [[1, 2], [3, 4]], "b": [1, 2]}
        assert expected == to_json_safe({"a": FakeArray(), "b": array.array("i", [1, 2])})

    def test_unknown_object_is_repr(self) -> None:
        """Unknown objects become their repr()."""
        expected = {"obj": "Custom()"}
        assert expected == to_json_safe({"obj": Custom()})

    def test_generator_is_not_consumed(self) -> None:
        """A generator is shown by repr and left unconsumed."""
        gen = (i for i in range(3))
        assert to_json_safe(gen).startswith("<generator")
        expected = [0, 1, 2]
        assert expected == list(gen)


class TestHostileObjects:
    def test_hostile_object_is_unrepresentable(self) -> None:
        """An object whose repr raises becomes a placeholder naming its type."""
        expected = {"h": "<unrepresentable Hostile>"}
        assert expected == to_json_safe({"h": Hostile()})

    def test_hostile_list_subclass(self) -> None:
        """A list subclass whose iteration and repr raise becomes a placeholder."""
        expected = ["<unrepresentable HostileList>"]
        assert expected == to_json_safe([HostileList([1])])

    def test_hostile_mapping_falls_back_to_repr(self) -> None:
        """A dict subclass whose items() raises is shown by its repr."""
        expected = ["{'a': 1}"]
        assert expected == to_json_safe([HostileMapping(a=1)])

    def test_hostile_top_level(self) -> None:
        """A hostile object at the top level never raises."""
        expected = "<unrepresentable Hostile>"
        assert expected == to_json_safe(Hostile())


class TestCyclesAndDepth:
    def test_self_containing_list(self) -> None:
        """A list that contains itself is cut with the cycle marker."""
        value: list[Any] = [1]
        value.append(value)
        expected = [1, CYCLE_MARKER]
        assert expected == to_json_safe(value)

    def test_self_containing_dict(self) -> None:
        """A dict that contains itself is cut with the cycle marker."""
        value: dict[str, Any] = {"a": 1}
        value["self"] = value
        expected = {"a": 1, "self": CYCLE_MARKER}
        assert expected == to_json_safe(value)

    def test_shared_reference_is_not_a_cycle(self) -> None:
        """The same list appearing twice side by side is copied twice, not cut."""
        shared = [b"x"]
        expected = [["<1 bytes>"], ["<1 bytes>"]]
        assert expected == to_json_safe([shared, shared])

    @pytest.mark.parametrize("extra", [None, b"x"], ids=["fast", "slow"])
    def test_depth_is_cut(self, extra: Any) -> None:
        """Containers deeper than MAX_DEPTH become the max depth marker, on both paths."""
        value: Any = [extra]
        for _ in range(MAX_DEPTH + 10):
            value = [value]
        result = to_json_safe(value)
        depth = 0
        while isinstance(result, list):
            result = result[0]
            depth += 1
        expected = (MAX_DEPTH, MAX_DEPTH_MARKER)
        assert expected == (depth, result)

    def test_depth_at_limit_is_kept(self) -> None:
        """Exactly MAX_DEPTH nested containers are kept whole."""
        value: Any = "leaf"
        for _ in range(MAX_DEPTH):
            value = [value]
        assert value == to_json_safe(value)


hashables = st.none() | st.booleans() | st.integers() | st.floats() | st.text() | st.binary()
leaves = hashables | st.builds(Hostile) | st.builds(Custom) | st.sampled_from(list(Color))
values = st.recursive(
    leaves,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(max_size=5) | st.integers(), children, max_size=4)
        | st.tuples(children, children)
        | st.frozensets(hashables, max_size=4)
        | st.sets(hashables, max_size=4)
    ),
    max_leaves=20,
)


class TestProperties:
    @settings(max_examples=200, deadline=None)
    @given(values)
    def test_never_raises_and_round_trips(self, value: Any) -> None:
        """Any nested value serializes to something that round-trips through JSON."""
        result = to_json_safe(value)
        assert roundtrip(result) == result

    @settings(max_examples=100, deadline=None)
    @given(values)
    def test_never_none_for_non_none(self, value: Any) -> None:
        """Only None serializes to None."""
        is_none = value is None
        assert is_none == (to_json_safe(value) is None)


BUDGET = 10_000


def size(value: Any) -> int:
    """The JSON size as the PostHog client measures it."""
    return len(json.dumps(value, allow_nan=False).encode())


class DtypedArray:
    """A numpy-like float array that is not numpy's (has dtype, shape, copy and tolist)."""

    dtype = SimpleNamespace(kind="f")

    def __init__(self, count: int) -> None:
        self.shape = (count,)

    def __getitem__(self, part: slice) -> "DtypedArray":
        start, stop, _ = part.indices(self.shape[0])
        return DtypedArray(max(stop - start, 0))

    def copy(self) -> "DtypedArray":
        return DtypedArray(self.shape[0])

    def tolist(self) -> list[float]:
        return [0.5] * self.shape[0]


class SlicedArray:
    """Looks like a large numpy array and records what was converted with tolist()."""

    def __init__(self, count: int) -> None:
        self.shape = (count,)
        self.converted = 0

    def __getitem__(self, part: slice) -> "SlicedArray":
        start, stop, _ = part.indices(self.shape[0])
        piece = SlicedArray(max(stop - start, 0))
        piece.start = start  # type: ignore[attr-defined]
        piece.parent = self  # type: ignore[attr-defined]
        return piece

    def tolist(self) -> list[float]:
        start = getattr(self, "start", 0)
        getattr(self, "parent", self).converted += self.shape[0]
        return [float(start + i) + 0.25 for i in range(self.shape[0])]


class TestBudget:
    def test_long_string_is_sliced(self) -> None:
        """A string longer than the budget keeps budget characters plus the marker."""
        result = to_json_safe({"text": "x" * 3_000_000}, BUDGET)
        expected = "x" * BUDGET + TRUNCATION_MARKER.format(n=f"{3_000_000 - BUDGET:,}")
        assert expected == result["text"]

    def test_long_float_list_keeps_a_bounded_prefix(self) -> None:
        """A long list of floats keeps a prefix a little over the budget, then the marker."""
        floats = [i + 0.123456789 for i in range(1_250_000)]
        result = to_json_safe(floats, BUDGET)
        kept = len(result) - 1
        expected = (floats[:kept], LIST_TRUNCATION_MARKER.format(n=f"{len(floats) - kept:,}"))
        assert expected == (result[:-1], result[-1])
        assert BUDGET < size(result) < 2 * BUDGET

    def test_list_of_dicts_keeps_a_bounded_prefix(self) -> None:
        """A 100,000-item list of dicts is cut once the budget is certainly spent."""
        items = [{"id": i, "text": f"item {i}"} for i in range(100_000)]
        result = to_json_safe(items, BUDGET)
        kept = len(result) - 1  # the last kept item may itself be cut, as fit_event would
        expected = (items[: kept - 1], LIST_TRUNCATION_MARKER.format(n=f"{100_000 - kept:,}"))
        assert expected == (result[: kept - 1], result[-1])
        assert BUDGET < size(result) < 2 * BUDGET

    def test_many_long_messages_are_all_kept(self) -> None:
        """Long messages are each cut rather than dropped, so every message reaches fit_event."""
        messages = [{"role": "user", "content": "m" * 5000} for _ in range(20)]
        result = to_json_safe(messages, BUDGET)
        expected = 20
        assert expected == len(result)
        assert result[0]["content"] == "m" * 5000
        assert result[-1]["content"].endswith(" chars]")

    def test_large_mapping_ends_with_a_marker_entry(self) -> None:
        """A mapping with many keys keeps its first keys plus a marker entry."""
        mapping = {f"key{i}": i for i in range(100_000)}
        result = to_json_safe(mapping, BUDGET)
        marker = result.pop(DICT_TRUNCATION_KEY)
        expected = DICT_TRUNCATION_MARKER.format(n=f"{100_000 - len(result):,}")
        assert expected == marker
        assert list(mapping)[: len(result)] == list(result)
        assert size(result) < 2 * BUDGET

    def test_huge_range_is_not_iterated_whole(self) -> None:
        """A huge range (or any iterable sequence) is read only as far as the budget needs."""
        result = to_json_safe(range(10**12), BUDGET)
        assert result[-1].startswith("…[truncated 999,99")
        assert size(result) < 2 * BUDGET

    def test_large_array_is_sliced_before_tolist(self) -> None:
        """A large numpy-like array converts only slices, never the whole array."""
        array_like = SlicedArray(10_000_000)
        result = to_json_safe({"embedding": array_like}, BUDGET)
        items = result["embedding"]
        expected = LIST_TRUNCATION_MARKER.format(n=f"{10_000_000 - (len(items) - 1):,}")
        assert expected == items[-1]
        assert array_like.converted < BUDGET

    def test_numpy_arrays_are_sliced(self) -> None:
        """A 10 MB numpy array becomes a bounded prefix; a 2-D one of a few rows keeps every
        row."""
        np = pytest.importorskip("numpy")
        flat = np.arange(1_250_000, dtype=np.float64) / 7
        matrix = flat.reshape(20, 62_500)
        result = to_json_safe([flat, matrix], BUDGET)
        kept = len(result[0]) - 1
        expected = (flat[:kept].tolist(), LIST_TRUNCATION_MARKER.format(n=f"{1_250_000 - kept:,}"))
        assert expected == (result[0][:-1], result[0][-1])
        expected_rows = 20
        assert expected_rows == len(result[1])
        assert size(result) < 3 * BUDGET

    def test_a_matrix_of_many_rows_keeps_its_first_rows_whole(self) -> None:
        """Of a 1,250 x 1,000 array, the first rows that fit are kept whole (as numpy prints
        it), not a share of every row: that would convert and measure all of them."""
        np = pytest.importorskip("numpy")
        matrix = np.arange(1_250_000, dtype=np.float64).reshape(1250, 1000) / 7
        for result in (to_json_safe(matrix, 800_000), thaw(snapshot(matrix, 800_000)[0])):
            *rows, crossing, marker = result
            assert matrix[: len(rows)].tolist() == rows
            assert matrix[len(rows)].tolist()[: len(crossing) - 1] == crossing[:-1]  # cut
            assert LIST_TRUNCATION_MARKER.format(n=f"{1250 - len(rows) - 1:,}") == marker
            assert 40 < len(rows) < 50

    @pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")  # np.matrix is legacy
    def test_numpy_matrix_rows_keep_their_shape(self) -> None:
        """A cut numpy matrix has the rows ``tolist()`` gives (a matrix row is itself 2-D)."""
        np = pytest.importorskip("numpy")
        matrix = np.matrix(np.arange(400_000, dtype=np.float64).reshape(4, 100_000) / 7)
        whole = matrix.tolist()
        for result in (to_json_safe(matrix, BUDGET), thaw(snapshot(matrix, BUDGET)[0])):
            expected = [4, whole[0][:5]]
            assert expected == [len(result), result[0][:5]]
            assert result[0][-1].startswith("…[truncated ")

    def test_fit_event_counts_what_the_snapshot_cut(self) -> None:
        """fit_event's final markers count the items and characters the snapshot already cut."""
        props = {"$ai_input": [f"{i:08}" for i in range(1_000_000)], "$ai_error": "e" * 10**6}
        whole, _ = fit_event(to_json_safe(props), BUDGET, {"$ai_input", "$ai_error"})
        cut, _ = fit_event(to_json_safe(props, BUDGET), BUDGET, {"$ai_input", "$ai_error"})
        assert whole == cut

    @settings(max_examples=200, deadline=None)
    @given(values, st.integers(0, 400))
    def test_budget_never_cuts_what_fits(self, value: Any, budget: int) -> None:
        """With a budget at least the snapshot's size, the result is the same as without one."""
        full = to_json_safe(value)
        cut = to_json_safe(value, budget)
        if size(full) <= budget:
            assert full == cut
        assert roundtrip(cut) == cut


def spy_on_cuts(monkeypatch: pytest.MonkeyPatch, name: str) -> list[bool]:
    """Whether each call of `_serialize`'s ``name`` (a shortcut) cut its value (else None)."""
    seen: list[bool] = []
    real = getattr(_serialize, name)

    def spy(value: Any, room: int, walk: Any) -> Any:
        result = real(value, room, walk)
        seen.append(result is not None)
        return result

    monkeypatch.setattr(_serialize, name, spy)
    return seen


class _Half(float):
    """A float subclass: converted to a plain float."""


class TestLongNumbers:
    """Lists of numbers far longer than the limit: cut from the first chunk's sizes."""

    @pytest.fixture
    def cuts(self, monkeypatch: pytest.MonkeyPatch) -> list[bool]:
        """Whether each `_long_numbers` call cut the list (False: it left it to the item path)."""
        return spy_on_cuts(monkeypatch, "_long_numbers")

    @pytest.mark.parametrize(
        "make",
        [
            lambda rnd, n: [rnd.random() for _ in range(n)],
            lambda rnd, n: [rnd.gauss(0, 0.03) for _ in range(n)],  # some in [1e-5, 1e-4)
            lambda rnd, n: [rnd.uniform(-1e6, 1e6) * 10 ** rnd.randint(-30, 30) for _ in range(n)],
            lambda rnd, n: [rnd.randint(-(2**40), 2**40) for _ in range(n)],
            lambda rnd, n: [rnd.randint(0, 50_000) for _ in range(n)],  # token ids
            lambda rnd, n: [rnd.random() < 0.3 for _ in range(n)],  # a mask
            lambda rnd, n: [None] * n,
        ],
        ids=["uniform", "embedding", "exponents", "big ints", "token ids", "booleans", "nulls"],
    )
    @pytest.mark.parametrize("limit", [20_000, 800_000])
    def test_numbers_far_over_the_limit_reach_the_event_as_sized_one_by_one(
        self, make: Any, limit: int, cuts: list[bool]
    ) -> None:
        """A list of numbers far longer than the limit is cut from its first chunk's sizes
        (not each number's): the event still holds exactly what sizing every number keeps."""
        numbers = make(random.Random(limit), 40 * limit // 10)
        fast = to_json_safe(numbers, limit)
        exact = to_json_safe(deque(numbers), limit)  # not a list: sized number by number
        assert [True] == cuts
        assert len(fast) < len(numbers)
        assert fast[-1].startswith("…[truncated ")
        assert fast[:-1] == numbers[: len(fast) - 1]
        assert fit_event({"$ai_input": exact}, limit, {"$ai_input"}) == fit_event(
            {"$ai_input": fast}, limit, {"$ai_input"}
        )

    def test_numbers_much_shorter_after_the_first_chunk_are_cut_early_but_marked(
        self, cuts: list[bool]
    ) -> None:
        """The one case that keeps fewer numbers than fit: long ones first, then short ones."""
        numbers = [1.2345678901234567] * 1024 + [0.5] * 1_000_000
        result = to_json_safe(numbers, 800_000)
        kept = len(result) - 1
        assert numbers[:kept] == result[:-1]
        assert LIST_TRUNCATION_MARKER.format(n=f"{len(numbers) - kept:,}") == result[-1]
        assert size(result) < 800_000
        assert [True] == cuts

    @pytest.mark.parametrize(
        "odd", [math.nan, math.inf, 1, True, None, 2**60, 0.5, _Half(0.5), "x", [0.5]]
    )
    def test_an_odd_item_after_the_first_chunk_is_converted(
        self, odd: Any, cuts: list[bool]
    ) -> None:
        """Numbers after the first chunk are checked before they are kept as they are."""
        numbers: list[Any] = [0.25 + i for i in range(400_000)]
        if type(odd) is float:  # a float kind among ints
            numbers = list(range(400_000))
        numbers[30_000] = odd
        result = to_json_safe(numbers, 800_000)
        assert [False] == cuts  # seen, and left to the item-by-item path
        assert result == to_json_safe(deque(numbers), 800_000)
        assert type(to_json_safe(odd)) is type(result[30_000])


class TestLongMappings:
    """Dicts of scalars far larger than the limit: cut from the first chunk's sizes."""

    @pytest.fixture
    def cuts(self, monkeypatch: pytest.MonkeyPatch) -> list[bool]:
        """Whether each `_long_mapping` call cut the dict (False: left to `_bmapping`)."""
        return spy_on_cuts(monkeypatch, "_long_mapping")

    @pytest.mark.parametrize(
        "make",
        [
            lambda rnd, i: i,
            lambda rnd, i: rnd.random(),
            lambda rnd, i: rnd.gauss(0, 0.03),
            lambda rnd, i: f"value {rnd.randint(0, 10 ** rnd.randint(1, 12))}",
            lambda rnd, i: rnd.random() < 0.5,
            lambda rnd, i: None,
        ],
        ids=["ints", "floats", "embedding", "short strings", "booleans", "nulls"],
    )
    @pytest.mark.parametrize("limit", [20_000, 800_000])
    def test_far_over_the_limit_reach_the_event_as_sized_one_by_one(
        self, make: Any, limit: int, cuts: list[bool]
    ) -> None:
        """The event holds exactly what converting entry by entry keeps, and the same count."""
        rnd = random.Random(limit)
        mapping = {f"key {i:x}" * rnd.randint(1, 3): make(rnd, i) for i in range(limit // 2)}
        fast = to_json_safe(mapping, limit)
        exact = to_json_safe(OrderedDict(mapping), limit)  # not a dict: entry by entry
        # Under a small limit, the first chunk alone may be over it: `_bmapping` cuts it.
        assert [True] == cuts or limit < 100_000
        assert len(fast) < len(mapping)
        marker = fast[DICT_TRUNCATION_KEY]
        assert marker == DICT_TRUNCATION_MARKER.format(n=f"{len(mapping) - len(fast) + 1:,}")
        assert fit_event({"$ai_input": exact}, limit, {"$ai_input"}) == fit_event(
            {"$ai_input": fast}, limit, {"$ai_input"}
        )

    @pytest.mark.parametrize(
        "odd", [math.nan, 2**60, 1, "x" * 100, "y", [0.5], {"a": 1}, _Half(0.5)]
    )
    def test_an_odd_entry_after_the_first_chunk_is_converted(
        self, odd: Any, cuts: list[bool]
    ) -> None:
        """Entries after the first chunk are checked before they are kept as they are."""
        mapping: dict[Any, Any] = {f"k{i}": i + 0.25 for i in range(400_000)}
        if type(odd) is int:
            mapping = {f"k{i}": i * 2 for i in range(400_000)}
            if odd == 1:
                odd = 0.5  # a float among ints
        mapping["k30000"] = odd
        result = to_json_safe(mapping, 800_000)
        assert [False] == cuts
        assert result == to_json_safe(OrderedDict(mapping), 800_000)

    def test_a_key_not_a_string_is_converted(self, cuts: list[bool]) -> None:
        """Keys must all be strings; an int key among them takes the entry-by-entry path."""
        mapping: dict[Any, Any] = {f"k{i}": i for i in range(30_000)}
        mapping[7] = 7
        mapping.update({f"k{i}": i for i in range(30_000, 400_000)})
        result = to_json_safe(mapping, 800_000)
        assert [False] == cuts
        assert result == to_json_safe(OrderedDict(mapping), 800_000)


class TestNumberChunks:
    """Long lists of numbers are sized a chunk at a time; the cut is the one item by item."""

    @settings(max_examples=150, deadline=None)
    @given(
        st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=17, max_size=3000)
        | st.lists(st.integers(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER), min_size=17, max_size=3000),
        st.integers(0, 30_000),
    )
    # A first chunk that fits, then a short tail whose last item crosses the budget.
    @example(numbers=[0.5] * 16 + [1.2345678901234567] * 3, budget=120)
    # "0.0000" inside a number, not one pydantic-core spells longer than repr() ("0.00001").
    @example(numbers=[10.00001] * 1000, budget=8000)
    def test_keeps_a_prefix_at_least_as_large_as_the_budget(
        self, numbers: list[Any], budget: int
    ) -> None:
        """What fits is kept whole; a cut list keeps a prefix whose JSON exceeds the budget.

        Sizes are lower bounds ("1e16" for "1e+16"), and the item that crosses the budget is
        kept too, so a list a little over the budget may be kept whole: fit_event makes the
        exact cut.
        """
        result = to_json_safe(numbers, budget)
        if size(numbers) <= budget or numbers == result:
            assert numbers == result
            # Lower bounds: a float at most one character short ("1e16"); item by item (a
            # short tail chunk) a float as "0.0" and an int as one digit. Kept whole, the
            # items before the last fit the budget (the last may be the one that crosses it).
            step = _serialize._chunk_size(budget)
            tail = len(numbers) % step
            by_item = tail if tail < _serialize._VECTOR_MIN else 0
            slack = 1 if type(numbers[0]) is float else 16
            short = sum(size(n) - 3 for n in numbers[len(numbers) - by_item : -1])
            assert size(numbers[:-1]) - slack * (len(numbers) - 1) - short <= budget
            return
        kept = len(result) - 1
        expected = (numbers[:kept], LIST_TRUNCATION_MARKER.format(n=f"{len(numbers) - kept:,}"))
        assert expected == (result[:-1], result[-1])
        assert size(result[:-1]) > budget  # nothing fit_event could keep was dropped

    @pytest.mark.parametrize(
        "odd", [math.nan, math.inf, -math.inf, 1, True, None, "x", [0.5], _Half(0.5)]
    )
    @pytest.mark.parametrize("at", [0, 23, 39])
    def test_one_odd_item_among_floats_is_converted_as_alone(self, odd: Any, at: int) -> None:
        """The chunk's type check is exact: NaN, an int, a bool or a float subclass is seen."""
        numbers: list[Any] = [0.25] * 40
        numbers[at] = odd
        result = to_json_safe(numbers, BUDGET)
        assert result == [to_json_safe(item) for item in numbers]
        assert [type(item) for item in result] == [type(to_json_safe(item)) for item in numbers]

    def test_tiny_floats_are_measured_as_json_writes_them(self) -> None:
        """ "1e-05" is shorter in JSON than pydantic-core's "0.00001": the cut still holds all."""
        numbers = [1.5e-5 + i * 1e-9 for i in range(100_000)]
        result = to_json_safe(numbers, BUDGET)
        kept = len(result) - 1
        assert numbers[:kept] == result[:-1]
        assert size(result[:-1]) > BUDGET


class TestMessageChunks:
    """Chat messages in a long list are sized by a shortcut: as `_fast_size` sizes them."""

    @settings(max_examples=150, deadline=None)
    @given(
        st.lists(
            st.fixed_dictionaries({"role": st.text(max_size=12), "content": st.text(max_size=600)})
            | st.fixed_dictionaries({"content": st.text(max_size=9), "role": st.text(max_size=5)})
            | st.fixed_dictionaries({"role": st.text(max_size=5), "name": st.text(max_size=5)}),
            min_size=16,
            max_size=40,
        ),
        st.integers(100, 100_000),
    )
    def test_sizes_are_those_of_the_general_path(self, chunk: list[Any], room: int) -> None:
        """Size, capped size and flatness are the ones item-by-item sizing gives."""
        sizes = [
            _serialize._fast_size(item, 1, 10**9, _serialize.new_walk(10**9)) for item in chunk
        ]
        expected_size = sum(n + 2 for n in sizes)
        expected_capped = sum(min(n, _serialize.MIN_ITEM) + 2 for n in sizes)
        size, capped, flat, kept = _serialize._plain_chunk(
            chunk, 1, room, _serialize.new_walk(10**9)
        )
        if expected_size > room:
            assert (_serialize._TOO_BIG, 0, False, 0) == (size, capped, flat, kept)
        else:
            assert (expected_size, expected_capped, True, len(chunk)) == (size, capped, flat, kept)


class TestShortcutEdges:
    """The fast paths for long lists keep the careful walker's limits."""

    def test_message_at_the_depth_limit_is_cut_with_a_budget_too(self) -> None:
        """A chat message nested to the depth limit is the same marker with or without a budget."""
        value: Any = [{"role": "user", "content": "hi"}] * 20
        for _ in range(_serialize.MAX_DEPTH - 1):
            value = [value]

        def leaf(item: Any) -> Any:
            while type(item) is list:
                item = item[0]
            return item

        expected = ("<max depth>", "<max depth>")
        assert expected == (leaf(to_json_safe(value)), leaf(to_json_safe(value, 100_000)))

    def test_a_row_whose_shape_raises_loses_only_itself(self) -> None:
        """An array-like row whose ``shape`` raises is walked as it is, not the whole array."""

        class Row:
            @property
            def shape(self) -> Any:
                raise RuntimeError("shape")

            def tolist(self) -> list[int]:
                return [1, 2, 3, 4, 5]

        class Rows:
            shape = (50_000, 5)

            def __getitem__(self, key: Any) -> Any:
                return self if isinstance(key, slice) else Row()

            def tolist(self) -> list[list[int]]:
                return [[1, 2, 3, 4, 5]] * 50_000

            def __repr__(self) -> str:
                return "Rows(...)"

        result = to_json_safe(Rows(), 2_000)
        assert isinstance(result, list)  # not "Rows(...)"
        assert "Row object" in result[0]  # the row that could not be read: its repr
        assert result[-1].startswith("…[truncated ")


class TestDeferredArrays:
    """A large numeric array is copied on the calling thread and converted by the worker."""

    def test_large_numeric_arrays_are_copied_not_converted(self) -> None:
        """snapshot() keeps a private copy of the rows that may be sent; thaw() converts it."""
        np = pytest.importorskip("numpy")
        flat = np.arange(1_250_000, dtype=np.float64) / 7
        copy, _, walk = snapshot({"x": flat}, BUDGET)
        assert walk.deferred
        assert isinstance(copy["x"], Deferred)
        assert copy["x"].head.size < flat.size
        assert not np.shares_memory(copy["x"].head, flat)

    @pytest.mark.parametrize("dtype", ["float64", "float32", "int64", "uint8", "bool"])
    def test_thawed_copy_is_the_budgeted_snapshot(self, dtype: str) -> None:
        """Converting later gives exactly what converting at once would have."""
        np = pytest.importorskip("numpy")
        flat = (np.arange(1_250_000) % 251).astype(dtype)
        matrix = flat.reshape(2_500, 500)
        cut_too = {"text": "x" * 300_000, "xs": [i + 0.5 for i in range(30_000)], "a": flat}
        for value in ({"args": [flat]}, {"args": [matrix]}, [flat, "text", matrix], cut_too):
            copy, _, walk = snapshot(value, BUDGET)
            assert walk.deferred
            assert to_json_safe(value, BUDGET) == thaw(copy)  # other cuts keep their counts

    def test_changes_after_the_snapshot_are_not_seen(self) -> None:
        """The caller may reuse its array as soon as the call returns."""
        np = pytest.importorskip("numpy")
        flat = np.arange(1_000_000, dtype=np.float64)
        expected = to_json_safe(flat, BUDGET)
        copy, _, _ = snapshot(flat, BUDGET)
        flat[:] = -1.0
        assert expected == thaw(copy)

    def test_small_and_object_arrays_are_converted_at_once(self) -> None:
        """Only arrays too large to send whole, of booleans and numbers, are deferred."""
        np = pytest.importorskip("numpy")
        objects = np.array([{"k": i} for i in range(100_000)], dtype=object)
        lazy = DtypedArray(10_000_000)  # numpy-like but not numpy (dask): may share buffers
        values = (np.arange(10.0), objects, SlicedArray(10_000_000), [1.0] * 100_000, lazy)
        for value in values:
            copy, _, walk = snapshot(value, BUDGET)
            assert not walk.deferred
            assert to_json_safe(value, BUDGET) == copy

    def test_a_deferred_copy_made_safe_without_budget(self) -> None:
        """to_json_safe (no budget) converts a Deferred within the budget it was made with."""
        np = pytest.importorskip("numpy")
        flat = np.arange(1_000_000, dtype=np.int64)
        copy, _, _ = snapshot(flat, 10_000)
        assert to_json_safe(flat, 10_000) == to_json_safe(copy)

    @settings(max_examples=100, deadline=None)
    @given(values, st.integers(0, 400))
    def test_without_arrays_snapshot_is_to_json_safe(self, value: Any, budget: int) -> None:
        """With no large numeric array, snapshot() is to_json_safe() with the budget."""
        copy, _, walk = snapshot(value, budget)
        assert not walk.deferred
        assert to_json_safe(value, budget) == copy


def _chunked_and_item_by_item(value: Any, budget: int) -> tuple[Any, Any]:
    """``to_json_safe(value, budget)`` as it is, and with number chunks cut item by item."""
    fast = to_json_safe(value, budget)
    real = _serialize._numbers_prefix
    _serialize._numbers_prefix = lambda chunk, text, room: (-1, 0)
    try:
        return fast, to_json_safe(value, budget)
    finally:
        _serialize._numbers_prefix = real


class TestChunkEdges:
    @settings(max_examples=60, deadline=None)
    @given(
        st.lists(st.text(min_size=300, max_size=3000), max_size=3),
        st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=17, max_size=5000),
        st.integers(100, 20_000),
    )
    @example(["x" * 10**6], [i + 0.5 for i in range(20_000)], 100_000)
    def test_number_chunks_keep_what_item_by_item_keeps(
        self, texts: list[str], numbers: list[float], budget: int
    ) -> None:
        """Numbers after long strings: sized a chunk at a time, kept as item by item."""
        fast, slow = _chunked_and_item_by_item([*texts, *numbers], budget)
        assert slow == fast

    @pytest.mark.parametrize(
        "pool",
        [
            [1e-7, 0.5],
            [2.5e-9, 0.5],
            [1.5e16, 0.5],
            [3e20, 0.5],
            [1e-5, 0.5],
            [2.5e-5, 1e-6, 0.5],
            [0.5, 0.25],
        ],
        ids=["e-7", "e-9", "e+16", "e+20", "e-05", "e-05 and e-6", "plain"],
    )
    def test_number_chunks_cut_where_item_by_item_cuts(self, pool: list[float]) -> None:
        """Exponents pydantic-core spells shorter than repr() ("1e-7" for "1e-07"; "1e16" for
        "1e+16" before pydantic-core 2.46), numbers it spells longer ("0.00001" for "1e-05"),
        and a chunk whose last item crosses the budget (the list ends there), over 100 seeded
        lists each."""
        for seed in range(100):
            rng = random.Random(seed)
            count = rng.randint(17, 3000)
            numbers = [rng.choice(pool) * rng.choice((1, -1)) for _ in range(count)]
            budget = rng.randint(100, 20_000)
            # The string is counted at most MIN_ITEM: the numbers get the room left, not a share.
            fast, slow = _chunked_and_item_by_item(["y" * 400, *numbers], budget)
            assert (seed, slow) == (seed, fast)

    @settings(max_examples=200, deadline=None)
    @given(
        st.lists(
            st.floats(allow_nan=False, allow_infinity=False)
            | st.floats(1e-6, 2e-4)
            | st.floats(-2e-4, -1e-6)
            | st.integers(-(2**53) + 1, 2**53 - 1),
            min_size=1,
            max_size=300,
        )
    )
    @example(
        [1e-5, -1e-5, 1.5e-5, 9.999e-5, 1e-4, 1e-6, 1e-7, 1e16, 1.5e16, 1e22, 5e-324, 10.00001]
    )
    def test_number_sizes_are_what_json_writes(self, numbers: list[float | int]) -> None:
        """Every item's size from pydantic-core's text: repr()'s spelling, exactly."""
        expected = [len(json.dumps(number)) for number in numbers]
        assert expected == number_sizes(numbers, pydantic_core.to_json(numbers))

    def test_no_numbers_no_sizes(self) -> None:
        assert [] == number_sizes([], pydantic_core.to_json([]))

    @pytest.mark.parametrize("count", [16, 1024, 2000])
    def test_a_tuple_of_floats_is_a_list_without_a_warning(self, count: int) -> None:
        """A function's ``*args`` is a tuple: sized and cut like a list (warnings are errors
        in this suite, as in many users' suites)."""
        numbers = tuple(0.25 + i for i in range(count))
        budget = 1000
        assert to_json_safe(list(numbers), budget) == to_json_safe(numbers, budget)
        assert to_json_safe({"args": numbers}, budget)["args"][0] == 0.25

    def test_a_len_that_says_fewer_still_marks_the_cut(self) -> None:
        """Items left after a cut are marked even when ``len()`` claimed there were none."""

        class Short(list):  # type: ignore[type-arg]
            def __len__(self) -> int:
                return 3

        for items in ([0.5] * 5000, ["word"] * 5000, [{"k": "v"}] * 5000):
            result = to_json_safe(Short(items), 500)
            assert "…[truncated]" == result[-1]
            assert result[:-1] == items[: len(result) - 1]

    def test_a_len_that_says_fewer_keeps_what_fits_unmarked(self) -> None:
        class Short(list):  # type: ignore[type-arg]
            def __len__(self) -> int:
                return 1

        assert [0.5] * 50 == to_json_safe(Short([0.5] * 50), 500)

    @pytest.mark.parametrize("item", [0.5, "word", {"k": "v"}])
    def test_a_len_that_says_more_marks_no_cut_that_did_not_happen(self, item: Any) -> None:
        """A sequence whose ``len()`` claims more items than it gives is kept whole, unmarked."""

        class Long(list):  # type: ignore[type-arg]
            def __len__(self) -> int:
                return 10_000

        items = [item] * 40
        assert items == to_json_safe(Long(items), 5000)

    def test_a_len_that_says_more_still_marks_a_real_cut(self) -> None:
        class Long(list):  # type: ignore[type-arg]
            def __len__(self) -> int:
                return 10_000

        result = to_json_safe(Long([0.5] * 5000), 500)
        assert result[-1].startswith("…[truncated")
        assert result[:-1] == [0.5] * (len(result) - 1)

    def test_a_mapping_whose_len_says_fewer_gets_a_marker_without_a_number(self) -> None:
        class Short(dict):  # type: ignore[type-arg]
            def __len__(self) -> int:
                return 2

        result = to_json_safe(Short({f"k{i}": "v" * 50 for i in range(200)}), 500)
        assert "…[truncated]" == result["…"]

    def test_long_list_of_datetimes_is_json_safe(self) -> None:
        """Items that are not JSON scalars (datetimes) are converted, not kept as they are."""
        moments = [datetime.datetime(2026, 1, 1, 12, i % 60) for i in range(2000)]
        result = to_json_safe(moments, BUDGET)
        assert result == roundtrip(result)
        assert "2026-01-01T12:00:00" == result[0]


class TestHead:
    """`Head`: the first items of a longer sequence, converted as the whole would be."""

    @pytest.mark.parametrize("budget", [None, BUDGET])
    def test_marker_counts_the_unread_items(self, budget: int | None) -> None:
        """Every item kept, the marker still counts the items after them."""
        got = to_json_safe(Head([{"a": 1}, (2, 3)], 10), budget)
        assert got == [{"a": 1}, [2, 3], LIST_TRUNCATION_MARKER.format(n="8")]

    @pytest.mark.parametrize("budget", [None, BUDGET])
    def test_all_items_no_marker(self, budget: int | None) -> None:
        """A head holding the whole sequence converts as the sequence."""
        assert to_json_safe(Head(["a", "b"], 2), budget) == ["a", "b"]

    def test_cut_like_the_whole_sequence(self) -> None:
        """Within a budget, a head cuts where the whole list is cut, with the same count."""
        items = [f"item {i} " * 20 for i in range(3_000)]
        whole = to_json_safe(items, 20_000)
        assert to_json_safe(Head(items[:1_000], len(items)), 20_000) == whole
        assert whole[-1] == LIST_TRUNCATION_MARKER.format(n=f"{3_000 - len(whole) + 1:,}")

    @pytest.mark.parametrize("items", [100, 400, 5_000])
    @pytest.mark.parametrize(
        "part",
        [
            lambda i: {"type": "text", "text": f"part {i}"},
            lambda i: f"part {i}",
            lambda i: {"type": "image", "source": {"data": "x" * (i % 50)}},
        ],
        ids=["blocks", "strings", "nested"],
    )
    @pytest.mark.parametrize(
        "wrap",
        [
            lambda c: [{"role": "user", "content": c}],
            lambda c: {"messages": [{"role": "user", "content": c}], "model": "m"},
            lambda c: [{"role": "system", "content": "s"}, {"role": "user", "content": c}],
            lambda c: {"content": c, "after": [1, 2, 3]},
        ],
        ids=["message", "arguments", "second message", "before a small list"],
    )
    def test_cut_like_the_whole_list_inside_others(self, items: int, part: Any, wrap: Any) -> None:
        """Inside a dict or list, a head that the item limit cuts within is cut as the list is.

        Its items count as the whole list's would, so a message's long content read only as
        far as the limit (`hogtrace._extract`) keeps what the whole content would keep.
        """
        parts = [part(i) for i in range(3 * items)]
        taken = sum(1 + len(p) if type(p) is dict else 1 for p in parts[: items + 1])
        head = Head(parts[: items + 1], len(parts))
        assert taken > items  # the limit certainly cuts within the head
        whole = snapshot(wrap(parts), 800_000, items)
        got = snapshot(wrap(head), 800_000, items)
        assert got[0] == whole[0]
        assert got[2].used == whole[2].used
        assert got[2].cut
        assert whole[2].cut


class TestHugeDictInAList:
    def test_not_walked_past_what_fits(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A dict of a million entries in a list is sized only as far as the budget goes.

        Sizing a list's dict items walked each of their fields: for a huge dict, all of them,
        twice, before the dict was cut (1.5 s on the calling thread for a million ints).
        """
        calls = 0
        size = _serialize._fast_size

        def counted(value: object, depth: int, room: int, walk: Any) -> int:
            nonlocal calls
            calls += 1
            return size(value, depth, room, walk)

        monkeypatch.setattr(_serialize, "_fast_size", counted)
        huge = {f"k{i}": i + 0.5 for i in range(200_000)}
        got = to_json_safe({"args": [huge]}, 800_000)
        kept = got["args"][0]
        assert 1_000 < len(kept) < 100_000
        assert list(kept)[-1] == DICT_TRUNCATION_KEY
        assert calls < 10_000


class TestKeysThatBecomeTheSameString:
    @pytest.mark.parametrize("budget", [None, BUDGET])
    def test_no_entry_is_lost(self, budget: int | None) -> None:
        """1 and "1", None and "null": their values are kept, in order, under the one name."""
        value = {1: "a", "1": "b", None: "c", "null": "d", 2.5: "e", "2.5": "f", "x": "g"}
        got = to_json_safe(value, budget)
        assert {"1": ["a", "b"], "null": ["c", "d"], "2.5": ["e", "f"], "x": "g"} == got

    @pytest.mark.parametrize("budget", [None, BUDGET])
    def test_a_repeated_header(self, budget: int | None) -> None:
        """A multi-map (Starlette's headers) keeps each value of a repeated key."""
        from starlette.datastructures import Headers

        headers = Headers(raw=[(b"accept", b"a"), (b"x-id", b"1"), (b"accept", b"b")])
        assert {"accept": ["a", "b"], "x-id": "1"} == to_json_safe(headers, budget)

    def test_distinct_names_unchanged(self) -> None:
        """Distinct names are kept as they are."""
        assert {"a": 1, "1": 2} == to_json_safe({"a": 1, 1: 2})
        assert {"a": 1} == to_json_safe(SimpleNamespace(a=1))


def kept_items(value: Any) -> int:
    """The items of a copy's lists and dicts, at every depth, without the cuts' markers, as
    ``items`` counts plain JSON read at C speed: one each, and a list or dict inside another
    one more. Read one at a time, an item counts more: this is the least it may count."""

    def marker(item: Any) -> bool:
        return type(item) is str and item.startswith("…[truncated")

    def one(item: Any) -> int:
        return 2 + kept_items(item) if type(item) in (dict, list) else 1

    if type(value) is dict:
        return sum(one(v) for v in value.values() if not marker(v))
    if type(value) is list:
        return sum(one(v) for v in value if not marker(v))
    return 0


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-1000, 1000)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text("abc", max_size=5),
    lambda children: (
        st.lists(children, max_size=30)
        | st.dictionaries(st.text("xyz", max_size=4), children, max_size=30)
    ),
    max_leaves=400,
)


class TestItemBudget:
    """``items``: a copy keeps at most that many items (list items, dict entries), marked."""

    @settings(max_examples=300, deadline=None)
    @given(json_values, st.integers(0, 300))
    def test_never_more_items_than_the_budget(self, value: Any, items: int) -> None:
        """A value within the budget is copied as without one; a larger one is cut, marked."""
        copy, _, walk = snapshot(value, 10**9, items)
        assert copy == to_json_safe(value, 10**9, items)
        assert kept_items(copy) <= items
        assert walk.used <= items
        if count_items(value, 10**9) <= items:
            assert copy == to_json_safe(value)
            assert not walk.cut
        else:
            assert walk.cut
            assert "…[truncated" in json.dumps(copy, ensure_ascii=False)

    @pytest.mark.parametrize(
        "make",
        [
            lambda n: [{"x": i + 0.5, "y": "a"} for i in range(n)],
            lambda n: [{}] * n,
            lambda n: [1, "a", None, 2.5] * (n // 4),
            lambda n: [[i / 7] * 10 for i in range(n // 10)],
            lambda n: [i / 7 for i in range(n)],
            lambda n: list(range(n)),
            lambda n: [f"s{i}" for i in range(n)],
            lambda n: {f"k{i}": i for i in range(n)},
            lambda n: {f"k{i}": {"v": i} for i in range(n)},
            lambda n: set(range(n)),
            lambda n: tuple({"role": "user", "content": f"m{i}"} for i in range(n)),
        ],
        ids=[
            "records",
            "empty dicts",
            "mixed",
            "float lists",
            "floats",
            "ints",
            "strings",
            "dict of ints",
            "dict of dicts",
            "set",
            "messages",
        ],
    )
    @pytest.mark.parametrize("items", [100, 5_000])
    def test_huge_values_of_small_items_are_cut_at_the_budget(self, make: Any, items: int) -> None:
        """However a huge value is read (chunks, shortcuts, item by item), it keeps its first
        items, as many as the budget holds, and says how many were cut."""
        value = make(200_000)
        copy, _, walk = snapshot({"args": [value]}, 800_000, items)
        kept = copy["args"][0]
        assert walk.cut
        # Out of items: not one more fits (an item read one at a time takes 16 at most).
        assert items - 16 < walk.used <= items
        assert kept_items(copy) <= walk.used  # the last item kept may be cut short
        if isinstance(kept, list):
            removed = len(value) - (len(kept) - 1)
            assert LIST_TRUNCATION_MARKER.format(n=f"{removed:,}") == kept[-1]
            whole = to_json_safe(list(value) if isinstance(value, set) else value)
            assert whole[: len(kept) - 2] == kept[:-2]  # a prefix (the last item may be cut)
        else:
            removed = len(value) - (len(kept) - 1)
            assert DICT_TRUNCATION_MARKER.format(n=f"{removed:,}") == kept[DICT_TRUNCATION_KEY]
            assert list(value)[: len(kept) - 2] == list(kept)[: len(kept) - 2]

    def test_numpy_arrays_are_cut_at_the_budget_when_thawed(self) -> None:
        """A deferred array keeps as many elements as the items left when it was copied."""
        np = pytest.importorskip("numpy")
        flat = np.arange(1_250_000, dtype=np.float64) / 7
        matrix = flat.reshape(1250, 1000)
        for value in (flat, matrix, matrix.astype(np.int8)):
            copy, _, walk = snapshot({"a": value}, 800_000, 5_000)
            assert walk.deferred
            assert walk.cut
            got = thaw(copy)
            assert to_json_safe({"a": value}, 800_000, 5_000) == got  # as converted at once
            assert 5_000 - 1_001 <= kept_items(got) <= 5_000
            assert f"…[truncated {len(value) - len(got['a']) + 1:,} items]" == got["a"][-1]
            assert value.tolist()[: len(got["a"]) - 2] == got["a"][:-2]

    def test_later_arguments_keep_their_share(self) -> None:
        """A huge first argument does not take the items of the small ones after it."""
        value = {
            "documents": [{"id": i, "text": "t"} for i in range(100_000)],
            "query": "what is x",
            "options": {"k": 5, "filters": ["a", "b"]},
        }
        copy, _, walk = snapshot(value, 800_000, 5_000)
        assert walk.cut
        assert "what is x" == copy["query"]
        assert {"k": 5, "filters": ["a", "b"]} == copy["options"]
        assert 5_000 - 6 < walk.used <= 5_000
        assert kept_items(copy) <= walk.used

    @pytest.mark.parametrize(
        ("value", "items"),
        [
            # Two entries read one at a time (6 each), 1,662 dicts of one entry (3 each).
            ({"records": [{"id": i} for i in range(1_662)], "query": "q"}, 6 + 3 * 1_662 + 6),
            # Its fields as a dict of plain values: 3 entries, 1 more for x and its 3, 1 more
            # for the empty tuple ``tags``.
            (Point(x={"a": 1, "b": 2, "c": 3}, y=1), 3 + 1 + 3 + 1),  # type: ignore[arg-type]
            ((Custom(), 5), 16 + 6),  # an object read one at a time, and an int beside it
            ([Custom(), 5, Custom()], 16 + 6 + 16),
            # 3 entries at C speed, a date 1 more, an empty list and dict 1 more each.
            ({"a": datetime.date(2020, 1, 1), "b": [], "c": {}}, 3 + 1 + 1 + 1),
        ],
        ids=["arguments", "dataclass", "object", "objects", "empty containers"],
    )
    def test_what_later_items_hold_never_cuts_a_value_that_fits(
        self, value: Any, items: int
    ) -> None:
        """Each later entry holds only what it takes at least: a value within the budget,
        with objects or empty containers, is whole; one item less cuts it."""
        copy, _, walk = snapshot(value, 10**9, items)
        assert to_json_safe(value) == copy
        assert not walk.cut
        assert items == walk.used
        assert snapshot(value, 10**9, items - 1)[2].cut

    def test_items_count_what_reading_them_costs(self) -> None:
        """Plain values read at C speed take one item each (a nested list or dict one more);
        an item read one at a time takes 6, one that is not plain JSON 16, a date 2."""
        assert 1_000 == snapshot(list(range(1_000)), 10**9, 10**6)[2].used
        assert 3 * 100 == snapshot([[i] for i in range(100)], 10**9, 10**6)[2].used
        assert 4 * 100 == snapshot([{"a": i, "b": i} for i in range(100)], 10**9, 10**6)[2].used
        assert 2 * 100 == snapshot([datetime.date(2020, 1, 1)] * 100, 10**9, 10**6)[2].used
        assert 16 * 100 == snapshot([Custom()] * 100, 10**9, 10**6)[2].used
        # A dict with an int key is read entry by entry, as is the list that holds it.
        assert (
            6 * 100 + 6 * 200
            == snapshot([{1: i, "b": i} for i in range(100)], 10**9, 10**6)[2].used
        )
        # 5,000 objects and huge lists of them keep 312: a few ms on the calling thread.
        copy = to_json_safe([Custom()] * 200_000, 10**9, 5_000)
        assert 5_000 // 16 + 1 == len(copy)
        assert f"…[truncated {200_000 - 5_000 // 16:,} items]" == copy[-1]

    def test_keys_that_become_one_name_count_the_list_that_holds_them(self) -> None:
        """1 and "1" become one name whose list of both values is one more item."""
        value = {1: None, "1": 1, "x": 2}  # read entry by entry: 6 each
        assert {"1": [None, 1], "x": 2} == to_json_safe(value, 10**9, 6 + 7 + 6)
        assert {"1": [None, 1], "…": "…[truncated 1 keys]"} == to_json_safe(value, 10**9, 18)

    def test_a_container_with_no_item_left_ends_its_parent(self) -> None:
        """No empty container with only a marker: the list is cut before it."""
        for items in (8, 11):  # each inner list takes 4: itself, 1 more, and its 2
            copy = to_json_safe([[1, 2], [3, 4], [5, 6]], 10**9, items)
            assert [[1, 2], [3, 4], "…[truncated 1 items]"] == copy

    def test_a_model_holding_a_huge_list_is_cut_without_dumping_it_whole(self) -> None:
        """A field of more than 1,024 items is walked in its place, not dumped whole; the
        other fields still go through the model's serializer, in the fields' order."""

        class Search(pydantic.BaseModel):
            query: str
            hits: list[int]
            when: datetime.date

            @pydantic.field_serializer("query")
            def _upper(self, query: str) -> str:
                return query.upper()

        search = Search(query="q", hits=list(range(1_000_000)), when=datetime.date(2026, 1, 2))
        copy, _, walk = snapshot({"search": search}, 800_000, 5_000)
        sent = copy["search"]
        assert ["query", "hits", "when"] == list(sent)
        assert ("Q", "2026-01-02") == (sent["query"], sent["when"])
        assert walk.cut
        assert list(range(len(sent["hits"]) - 1)) == sent["hits"][:-1]
        assert f"…[truncated {1_000_000 - len(sent['hits']) + 1:,} items]" == sent["hits"][-1]
        small = Search(query="q", hits=[1, 2], when=datetime.date(2026, 1, 2))
        assert small.model_dump(mode="json") == snapshot(small, 800_000, 5_000)[0]

        class Rows(pydantic.RootModel[list[int]]):
            pass

        rows = snapshot(Rows(list(range(100_000))), 800_000, 5_000)[0]
        assert list(range(len(rows) - 1)) == rows[:-1]
        assert rows[-1].startswith("…[truncated ")

    @pytest.mark.parametrize(
        "value",
        [
            [[Point(1, 2.0)] * 10 for _ in range(100)],
            {f"k{i}": [Custom()] * 5 for i in range(100)},
            [{1: "a", 2: "b", 3: "c"} for _ in range(1_000)],
            [[datetime.date(2020, 1, 1)] * 5 for _ in range(1_000)],
            [[Custom(), Custom(), Custom()], "next", "after"],
        ],
        ids=["dataclasses", "objects", "int keys", "dates", "objects then strings"],
    )
    def test_a_cut_copy_is_a_prefix_without_empty_containers(self, value: Any) -> None:
        """Cut for items at any limit, a copy keeps a prefix: nothing after an item that was
        itself cut, and no container inside another with only a marker (the parent is cut
        before it). Found by a helper: items of 6 and 16 ran out inside a container that had
        just one item's room."""
        whole = to_json_safe(value)

        def check(copy: Any, original: Any, top: bool) -> None:
            if isinstance(copy, list) and copy and isinstance(copy[-1], str):
                kept = copy[:-1] if copy[-1].startswith("…[truncated") else copy
            else:
                kept = copy
            if isinstance(copy, dict):
                kept = {k: v for k, v in copy.items() if not k.startswith("…")}
                assert top or kept or not original, "a dict inside another with only its marker"
                keys = list(kept)
                assert keys == list(original)[: len(keys)]
                for key in keys[:-1]:
                    assert kept[key] == original[key]
                if keys:
                    check(kept[keys[-1]], original[keys[-1]], False)
            elif isinstance(copy, list):
                assert top or kept or not original, "a list inside another with only its marker"
                assert kept[:-1] == original[: max(len(kept) - 1, 0)]
                if kept:
                    check(kept[-1], original[len(kept) - 1], False)
            else:
                assert copy == original

        for items in [*range(6, 100), *range(100, 1_200, 7)]:
            copy, _, walk = snapshot(value, 10**9, items)
            check(copy, whole, True)
            assert walk.used <= items

    @pytest.mark.parametrize(
        "options",
        [
            {"k": 1, "when": datetime.date(2026, 1, 1), "id": uuid.UUID(int=1)},
            {1: "a", 2: "b", 3: "c"},
            Point(1, 2.0, ("a", "b")),
            [Point(i, 0.5) for i in range(3)],
            Message(role="user", content="hi"),
            namedtuple("P", "a b")(1, 2),
            {(1, 2), (3, 4)},
            [0.5, 0.25, Color.RED],
        ],
        ids=["dates", "int keys", "dataclass", "dataclasses", "model", "namedtuple", "set", "enum"],
    )
    def test_a_small_argument_after_a_huge_one_is_whole(self, options: Any) -> None:
        """What a later argument holds counts what reading it costs (objects, entries read one
        at a time, dates): it is kept whole after any huge first argument."""
        for huge in (list(range(200_000)), [Custom()] * 200_000, [{1: i} for i in range(200_000)]):
            copy, _, walk = snapshot({"documents": huge, "options": options}, 800_000, 5_000)
            assert to_json_safe(options) == copy["options"]
            assert walk.cut

    def test_an_argument_that_holds_itself_is_read_only_as_deep_as_a_walk(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """What a cyclic argument holds for itself is counted down to the walk's depth limit,
        not to Python's recursion limit (~1,000 calls: a decorated call took 4-8 ms)."""
        loop: list[Any] = []
        loop.append(loop)
        mapping: dict[str, Any] = {"x": 1}
        mapping["self"] = mapping
        calls = 0
        least_inside = _serialize._least_inside

        def counted(*args: Any) -> tuple[int, bool]:
            nonlocal calls
            calls += 1
            return least_inside(*args)

        monkeypatch.setattr(_serialize, "_least_inside", counted)
        arguments = {"big": list(range(100_000)), "query": "q", "loop": loop, "map": mapping}
        copy, _, walk = snapshot(arguments, 800_000, 5_000)
        assert calls <= 4 * (MAX_DEPTH + 2)  # each read at most twice; ~3,000 before
        assert ("q", ["<cycle>"], {"x": 1, "self": "<cycle>"}) == (
            copy["query"],
            copy["loop"],
            copy["map"],
        )
        assert walk.cut

    @pytest.mark.parametrize("count", [1_025, 2_000, 4_096, 4_999])
    def test_a_dict_of_more_than_a_chunk_within_the_budget_is_whole(self, count: int) -> None:
        """A dict of more than 1,024 plain entries is read a chunk at a time (1 an entry),
        not entry by entry (6): within the budget it is whole (a helper found 833 kept)."""
        value = {f"w{i}": i for i in range(count)}
        copy, _, walk = snapshot(value, 800_000, 5_000)
        assert value == copy
        assert (count, False) == (walk.used, walk.cut)
        nested = {f"k{i}": {"v": i} for i in range(count // 3)}  # 3 items each
        assert nested == snapshot(nested, 800_000, 5_000)[0]
        # An entry that is not plain after the first chunk: entry by entry from its chunk on.
        odd = {**value, "obj": Custom(), **{f"x{i}": i for i in range(2_000)}}
        copy, _, walk = snapshot(odd, 800_000, 5_000)
        assert list(odd)[: len(copy) - 1] == list(copy)[:-1]
        assert list(range(1_024)) == [copy[f"w{i}"] for i in range(1_024)]  # the first chunk
        assert walk.cut
        assert 5_000 - 16 < walk.used <= 5_000

    def test_containers_known_to_hold_too_many_items_are_not_sized_again(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Each level of a deeply wrapped value would size the same records again (10 levels:
        ~55 ms); a container known to hold more items than are left fails at once. The copy
        is the one the walk makes sizing it again."""
        records = [{"id": i, "name": "n", "ok": True} for i in range(1_000)]
        lists = [[1, 2, 3]] * 2_000
        values: list[Any] = [{"rows": records}, {"x": lists}, [records, lists, records]]
        for inner in (records, lists):
            deep: Any = inner
            for _ in range(10):
                deep = [deep, {"k": deep}]
            values.append(deep)
        fast = [snapshot(value, 800_000, items) for value in values for items in (500, 5_000)]
        monkeypatch.setattr(_serialize, "_short", lambda walk, value, entry: _serialize._TOO_BIG)
        again = [snapshot(value, 800_000, items) for value in values for items in (500, 5_000)]
        assert [(c, s, w.used, w.cut) for c, s, w in again] == [
            (c, s, w.used, w.cut) for c, s, w in fast
        ]

    def test_without_a_budget_nothing_is_cut(self) -> None:
        """``items=None`` (the default): only the size cuts."""
        value = [{}] * 100_000
        assert value == to_json_safe(value, 10**9)
        assert not snapshot(value, 10**9)[2].cut


@dataclasses.dataclass
class Pair:
    a: int
    b: str


class TestAsText:
    """What a formatter sends as ``str(value)``: copied now, made a string when the event is."""

    PLAIN = (
        [0.1, 0.25, -3.5e-07, 1e300],
        [[1, 2], [3.5]],
        [{"role": "user", "content": "hi"}, {"a": [None, True]}],
        {"k": [1, "two", 3.0], "n": None},
        ["x" * 50] * 2_000,  # many items, copied whole: the same string
    )
    CONVERTED = (
        {1: "a", 2: "b"},
        [Pair(1, "x")],
        [(1,), {"k": (2, 3)}],
        {"s": {1, 2}},
        [b"raw"],
        ("a", 2),
    )
    ROWS = ((1, 2), [float("nan"), 1.0, -0.0], [2**64, True, None], (0.5,), [], ())

    @pytest.mark.parametrize("row", ROWS, ids=repr)
    def test_rows_of_numbers_print_exactly(self, row: Any) -> None:
        """A list or tuple of numbers is copied as it is: NaN, big ints, a tuple print as such."""
        copy, _, walk = snapshot({"c": _serialize.AsText(row)}, 800_000, 5_000)
        assert walk.deferred
        assert {"c": str(row)} == thaw(copy)
        assert {"c": str(row)} == to_json_safe({"c": _serialize.AsText(row)}, 800_000, 5_000)
        assert {"c": str(row)} == to_json_safe({"c": _serialize.AsText(row)})

    @pytest.mark.parametrize("kind", [list, tuple])
    @pytest.mark.parametrize("items", [1, 2, 3, 50])
    def test_a_cut_row_of_numbers(self, kind: type, items: int) -> None:
        """Cut at ``max_items``: its first values, then the marker of those left out."""
        row = kind(i / 7 for i in range(1_000))
        copy, _, walk = snapshot(_serialize.AsText(row), 800_000, items)
        assert walk.cut
        cut: list[str] = []
        text = thaw(copy, cut)
        kept = (items - 1) * 8  # the row takes one item, and one more per 8 values
        head = ", ".join(map(repr, row[:kept]))
        marker = f"'…[truncated {1_000 - kept:,} items]'"
        brackets = "()" if kind is tuple else "[]"
        assert f"{brackets[0]}{head}{', ' if kept else ''}{marker}{brackets[1]}" == text
        assert [text] == cut

    @pytest.mark.parametrize("value", PLAIN, ids=["floats", "lists", "dicts", "dict", "many"])
    def test_plain_values_are_made_their_string_later(self, value: Any) -> None:
        """A copy of plain JSON prints as the value: it is copied, and made a string by thaw."""
        copy, _, walk = snapshot({"c": _serialize.AsText(value)}, 800_000, 5_000)
        assert walk.deferred
        assert type(copy["c"]) is _serialize.AsText
        assert copy["c"].value is not value
        cut: list[str] = []
        assert {"c": str(value)} == thaw(copy, cut)
        assert [] == cut
        assert not walk.cut

    @pytest.mark.parametrize("value", CONVERTED, ids=repr)
    def test_converted_values_print_as_their_copy(self, value: Any) -> None:
        """The string is of the JSON-safe copy: a tuple as a list, an object as its dict."""
        copy, _, walk = snapshot({"c": _serialize.AsText(value)}, 800_000, 5_000)
        assert walk.deferred
        assert {"c": str(to_json_safe(value))} == thaw(copy)

    def test_later_changes_are_not_seen(self) -> None:
        """The copy is taken when the snapshot is: the caller may change its list after."""
        value = [1.5, 2.5]
        copy, _, _ = snapshot([_serialize.AsText(value)], 800_000, 5_000)
        value.append(3.5)
        assert ["[1.5, 2.5]"] == thaw(copy)

    @pytest.mark.parametrize("kind", [list, tuple])
    def test_many_items_are_cut_as_the_value_would_be(self, kind: type) -> None:
        """Past ``max_items``: the string of the cut copy, its marker counting what was left."""
        floats = [i / 7 for i in range(100_000)]
        copy, _, walk = snapshot([_serialize.AsText(kind(floats))], 800_000, 5_000)
        assert walk.cut
        cut: list[str] = []
        (text,) = thaw(copy, cut)
        assert [text] == cut
        (alone,), _, _ = snapshot([floats], 800_000, 5_000)  # the value where it was
        assert str(alone) == text  # a tuple shows as the list it is copied to
        kept = len(alone) - 1
        assert text.endswith(f", '…[truncated {100_000 - kept:,} items]']")
        assert text.startswith(str(floats[:kept])[:-1])

    def test_cut_by_size_to_the_room(self) -> None:
        """Cut by size: the string of the cut copy, cut to the room it had if longer."""
        value = ["x" * 1_000] * 2_000
        copy, _, walk = snapshot({"c": _serialize.AsText(value)}, 50_000, 5_000)
        cut: list[str] = []
        text = thaw(copy, cut)["c"]
        assert [text] == cut  # what made the event flag it
        assert text.startswith("['xxx")
        assert len(text) <= 50_000 + len("…[truncated 1,000,000 chars]")
        numbers = [i / 7 for i in range(10_000)]
        copy, _, walk = snapshot({"c": _serialize.AsText(numbers)}, 50_000, 20_000)
        cut.clear()
        text = thaw(copy, cut)["c"]
        assert not walk.cut  # by size, not by items
        assert [text] == cut
        assert 45_000 < len(text) <= 50_000 + len("…[truncated 1,000,000 chars]")
        strings = [f"item {i}" for i in range(10_000)]
        copy, _, walk = snapshot({"c": _serialize.AsText(strings)}, 50_000, 20_000)
        text = thaw(copy)["c"]
        assert text.endswith(" items]']")  # the room left for ", ": the copy's marker is kept

    def test_a_row_of_numbers_counts_one_item_per_8_values(self) -> None:
        """Printing is what it costs: 10 rows of 768 floats take 10 x 103 items, all kept."""
        rows = [_serialize.AsText([j + i / 7 for i in range(768)]) for j in range(10)]
        copy, _, walk = snapshot(rows, 800_000, 5_000)
        assert not walk.cut
        assert 10 * (6 + 1 + 768 // 8) == walk.used  # read by hand, the row, 1 an 8 values
        assert [str([j + i / 7 for i in range(768)]) for j in range(10)] == thaw(copy)

    @pytest.mark.parametrize("room", [100, 2_000, 10_000])
    def test_a_row_cut_by_size_ends_with_its_marker(self, room: int) -> None:
        """Cut to the room at a value's end: the marker counts every value left out."""
        row = [i / 7 for i in range(1_000)]
        copy, _, _ = snapshot({"c": _serialize.AsText(row)}, room, 5_000)
        cut: list[str] = []
        text = thaw(copy, cut)["c"]
        head, _, marker = text.rpartition(", '…[truncated ")
        kept = head.count(", ") + 1
        assert str(row[:kept])[:-1] == head
        assert f"{1_000 - kept:,} items]']" == marker
        assert len(text) <= room
        assert [text] == cut

    @pytest.mark.parametrize("row", [[10**5000] * 40, (10**5000,), [1, 10**5000]], ids=len)
    def test_an_int_too_long_to_print(self, row: Any) -> None:
        """Python will not print an int of over 4,300 digits: it shows as its size in bits."""
        copy, _, _ = snapshot({"c": _serialize.AsText(row)}, 800_000, 5_000)
        text = thaw(copy)["c"]
        assert "<int of 16,610 bits>" in text
        assert text[0] == ("(" if type(row) is tuple else "[")

    @pytest.mark.parametrize(
        "row", [[10**100, 0.5, None, True, -(10**200)], (10**3000,), [2**256] * 3], ids=len
    )
    def test_a_row_of_long_ints_prints_exactly(self, row: Any) -> None:
        """A row holding an int of more than 78 digits is sized from bits, printed later."""
        copy, size, walk = snapshot({"c": _serialize.AsText(row)}, 800_000, 5_000)
        assert walk.deferred
        assert {"c": str(row)} == thaw(copy)
        assert size <= len(json.dumps(thaw(copy)))  # a lower bound

    def test_a_row_of_long_ints_counts_their_digits_squared(self) -> None:
        """Each int takes one item more per 2**18 of its digits squared: the row is cut."""
        row = [10**2999 + i for i in range(1_000)]  # 3,000 digits: 35 items each
        copy, _, walk = snapshot({"c": _serialize.AsText(row)}, 10_000_000, 5_000)
        text = thaw(copy)["c"]
        head, _, marker = text.rpartition(", '…[truncated ")
        kept = head.count(", ") + 1
        assert kept == (5_000 - 2) // 35  # as many as the items left hold (after the dict's)
        assert str(row[:kept])[:-1] == head
        assert f"{1_000 - kept:,} items]']" == marker
        assert walk.cut

    @pytest.mark.parametrize("limit", [4_300, 0], ids=["default", "unlimited"])
    def test_a_row_of_ints_past_the_json_limit(self, limit: int) -> None:
        """Ints of more than 14,284 bits print as their marker, whatever Python would print
        (``sys.set_int_max_str_digits(0)`` prints any): sized and counted as the marker."""
        previous = sys.get_int_max_str_digits()
        sys.set_int_max_str_digits(limit)
        try:
            huge = [2**14_284, 3**200_000, 10**100, 10**100]
            copy, size, walk = snapshot({"c": _serialize.AsText(huge)}, 4_000, 5_000)
            text = thaw(copy)["c"]
        finally:
            sys.set_int_max_str_digits(previous)
        marks = [f"<int of {n.bit_length():,} bits>" for n in huge[:2]]
        assert f"[{marks[0]}, {marks[1]}, {10**100}, {10**100}]" == text
        assert size <= len(json.dumps({"c": text}))
        assert walk.used < 20

    def test_its_items_count_as_the_values(self) -> None:
        """The copy takes of ``max_items`` what the value itself takes."""
        value = [[0.5] * 10] * 30
        _, _, alone = snapshot(value, 800_000, 5_000)
        _, _, wrapped = snapshot(_serialize.AsText(value), 800_000, 5_000)
        assert alone.used == wrapped.used == 30 * 12

    @pytest.mark.parametrize("value", [*PLAIN[:4], *CONVERTED], ids=repr)
    def test_without_a_snapshot(self, value: Any) -> None:
        """to_json_safe makes it a string at once: of the value, or with a budget its copy."""
        assert {"c": str(value)} == to_json_safe({"c": _serialize.AsText(value)})
        within = {"c": str(to_json_safe(value, 800_000, 5_000))}
        assert within == to_json_safe({"c": _serialize.AsText(value)}, 800_000, 5_000)

    def test_hostile_items_never_raise(self) -> None:
        """An item whose str() raises prints as its repr, or a marker, as any value does."""
        copy, _, _ = snapshot(_serialize.AsText([Hostile()] * 2_000), 800_000, 5_000)
        assert thaw(copy).startswith("[")
