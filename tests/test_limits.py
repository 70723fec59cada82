import copy
import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hogtrace import _limits
from hogtrace._limits import LIST_TRUNCATION_MARKER, TRUNCATION_MARKER, _bound, fit_event

CONTENT_KEYS = frozenset(
    {"$ai_input", "$ai_output_choices", "$ai_input_state", "$ai_output_state", "$ai_error"}
)
MAX = 800_000


def size(value: Any) -> int:
    """The size as the PostHog client measures an event (posthog/consumer.py)."""
    return len(json.dumps(value, allow_nan=False).encode())


def event(**content: Any) -> dict[str, Any]:
    props = {"$ai_trace_id": "trace-1", "$ai_span_id": "span-1", "$ai_model": "gpt-4o"}
    props.update({f"$ai_{key}": value for key, value in content.items()})
    return props


class TestFitting:
    def test_small_event_is_returned_unchanged(self) -> None:
        """An event that fits is the very same dict, not truncated."""
        props = event(input=[{"role": "user", "content": "hi"}])
        result, truncated = fit_event(props, MAX, CONTENT_KEYS)
        expected = (props, False)
        assert expected == (result, truncated)
        assert props is result

    def test_exactly_at_limit_fits(self) -> None:
        """An event of exactly max_bytes fits."""
        props = event(input="")
        props["$ai_input"] = "x" * (MAX - size(props))
        expected = (props, False)
        assert expected == fit_event(props, MAX, CONTENT_KEYS)

    def test_non_ascii_below_limit_fits(self) -> None:
        """Non-ASCII text that fits once JSON-escaped is left alone."""
        props = event(input="中" * 1000)
        expected = (props, False)
        assert expected == fit_event(props, 7000, CONTENT_KEYS)

    def test_non_ascii_is_measured_as_posthog_measures(self) -> None:
        """Text under the limit in UTF-8 bytes but over it JSON-escaped (6 bytes a char) is cut."""
        props = event(input="中" * 1000)
        assert len(json.dumps(props, ensure_ascii=False).encode()) < 4000
        result, truncated = fit_event(props, 4000, CONTENT_KEYS)
        assert truncated
        assert size(result) <= 4000


class TestStrings:
    def test_three_megabyte_string(self) -> None:
        """A 3 MB string is cut to fit, ending with the thousands-separated marker."""
        props = event(input="x" * 3_000_000)
        result, truncated = fit_event(props, MAX, CONTENT_KEYS)
        text = result["$ai_input"]
        removed = 3_000_000 - text.index("…")
        assert truncated
        assert size(result) <= MAX
        assert size(result) > MAX - 100
        assert text.endswith(TRUNCATION_MARKER.format(n=f"{removed:,}"))
        assert "…[truncated 2,2" in text

    def test_largest_value_is_cut_first(self) -> None:
        """The large output is cut while the small input and the ids stay intact."""
        props = event(input="short input", output_choices="y" * 1_000_000)
        result, _ = fit_event(props, MAX, CONTENT_KEYS)
        expected = ("short input", "trace-1", "span-1")
        assert expected == (result["$ai_input"], result["$ai_trace_id"], result["$ai_span_id"])
        assert "…[truncated" in result["$ai_output_choices"]

    def test_large_message_in_list_keeps_structure(self) -> None:
        """A huge message inside a message list is cut in place, keeping every message."""
        messages = [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "z" * 2_000_000},
            {"role": "user", "content": "last"},
        ]
        result, _ = fit_event(event(input=messages), MAX, CONTENT_KEYS)
        cut = result["$ai_input"]
        expected = [("system", "be brief"), ("user", "zzzzzzzz"), ("user", "last")]
        assert expected == [(m["role"], m["content"][:8]) for m in cut]
        assert cut[1]["content"].startswith("zzz")
        assert size(result) <= MAX

    def test_escaped_characters(self) -> None:
        """Strings full of characters that JSON escapes still fit."""
        props = event(input='"\\\n\x01' * 200_000)
        result, _ = fit_event(props, 100_000, CONTENT_KEYS)
        assert size(result) <= 100_000


class TestLists:
    def test_hundred_thousand_items(self) -> None:
        """A 100,000-item list is cut to a prefix plus a final marker item."""
        items = [f"item {i}" for i in range(100_000)]
        result, truncated = fit_event(event(input=items), 200_000, CONTENT_KEYS)
        cut = result["$ai_input"]
        dropped = 100_000 - (len(cut) - 1)
        assert truncated
        assert size(result) <= 200_000
        assert items[: len(cut) - 1] == cut[:-1]
        expected = LIST_TRUNCATION_MARKER.format(n=f"{dropped:,}")
        assert expected == cut[-1]

    def test_many_medium_items_are_each_cut(self) -> None:
        """A list of many medium messages keeps every message, each cut to a common cap."""
        messages = [{"role": "user", "content": "m" * 2000} for _ in range(100)]
        result, _ = fit_event(event(input=messages), 100_000, CONTENT_KEYS)
        expected = 100
        assert expected == len(result["$ai_input"])
        assert size(result) <= 100_000


class TestLastResorts:
    def test_a_mapping_with_too_many_keys_keeps_its_first_ones(self) -> None:
        """A mapping whose keys alone exceed the room keeps its first entries and a "…" entry
        saying how many keys were cut, as the snapshot cuts one (not a single marker string)."""
        many_keys = {f"k{i}": i for i in range(5000)}
        result, _ = fit_event(event(input=many_keys), 1000, CONTENT_KEYS)
        kept = result["$ai_input"]
        *entries, (marker_key, marker) = kept.items()
        assert 10 < len(entries) < 5000
        assert entries == list(many_keys.items())[: len(entries)]
        assert ("…", f"…[truncated {5000 - len(entries):,} keys]") == (marker_key, marker)
        assert size(result) <= 1000

    def test_large_documents_keep_their_first_keys(self) -> None:
        docs = {f"doc{i}": "t" * 1000 for i in range(20_000)}
        result, truncated = fit_event(event(input={"docs": docs}), MAX, CONTENT_KEYS)
        kept = result["$ai_input"]["docs"]
        assert truncated
        assert 500 < len(kept) < 20_000
        assert "t" * 1000 == kept["doc0"]
        assert f"…[truncated {20_000 - len(kept) + 1:,} keys]" == kept["…"]
        assert size(result) <= MAX

    def test_a_mapping_the_snapshot_cut_keeps_counting_its_keys(self) -> None:
        """The snapshot's own "…" entry (keys it did not copy) adds to the count."""
        snapshot = {**{f"k{i}": "v" * 100 for i in range(100)}, "…": "…[truncated 900 keys]"}
        result, _ = fit_event(event(input=snapshot), 2000, CONTENT_KEYS)
        kept = result["$ai_input"]
        assert f"…[truncated {1000 - (len(kept) - 1):,} keys]" == kept["…"]

    def test_your_own_dollar_properties_are_cut_like_the_others(self) -> None:
        """Only hogtrace's own properties are always kept: ``$p1`` of yours is not one."""
        props = {f"$p{i}": i for i in range(5000)} | event(input="in")
        result, _ = fit_event(props, 20_000, CONTENT_KEYS)
        kept = [key for key in result if key.startswith("$p")]
        assert size(result) <= 20_000
        assert kept == [f"$p{i}" for i in range(len(kept))]
        assert f"…[truncated {5000 - len(kept):,} keys]" == result["…"]
        assert "trace-1" == result["$ai_trace_id"]

    @pytest.mark.parametrize(("count", "value"), [(20_000, "x" * 50), (100_000, 1)])
    def test_too_many_properties_keep_hogtraces_own_and_the_first_others(
        self, count: int, value: Any
    ) -> None:
        """An event with more small properties than the limit holds keeps every ``$``
        property (its content cut first), then the others in order while they fit, and says
        how many were cut."""
        props = {f"p{i}": value for i in range(count)} | event(input="in")
        result, truncated = fit_event(props, MAX, CONTENT_KEYS)
        own = {k: v for k, v in props.items() if k.startswith("$") and k not in CONTENT_KEYS}
        others = [key for key in result if not key.startswith(("$", "…"))]
        assert truncated
        assert size(result) <= MAX
        assert own == {key: result[key] for key in own}
        assert others == [f"p{i}" for i in range(len(others))]
        assert f"…[truncated {count - len(others):,} keys]" == result["…"]

    def test_large_non_content_is_cut_last(self) -> None:
        """Non-content properties are cut only when they alone exceed the limit."""
        props = event(input="in")
        props["custom"] = "c" * 10_000
        result, _ = fit_event(props, 2000, CONTENT_KEYS)
        assert size(result) <= 2000
        expected = "trace-1"
        assert expected == result["$ai_trace_id"]

    @pytest.mark.parametrize(
        "value", [[["x"]] * 20_000, [{"a": 1}] * 20_000, [[1, 2, 3]] * 20_000], ids=len
    )
    def test_large_non_content_of_small_items_fits(self, value: Any) -> None:
        """A non-content property made of many small containers is still cut to fit."""
        props = event(input="in")
        props["custom"] = value
        result, _ = fit_event(props, 5000, CONTENT_KEYS)
        assert size(result) <= 5000

    def test_non_json_values_are_made_safe(self) -> None:
        """Values json cannot encode (bytes, NaN) are converted so the result is valid JSON."""
        props = event(input=[b"abc", math.nan])
        result, truncated = fit_event(props, MAX, CONTENT_KEYS)
        expected = ["<3 bytes>", "NaN"]
        assert expected == result["$ai_input"]
        assert not truncated

    def test_input_is_not_mutated(self) -> None:
        """Cutting never mutates the input properties."""
        props = event(input=[{"role": "user", "content": "q" * 50_000}], error="e" * 50_000)
        before = copy.deepcopy(props)
        fit_event(props, 10_000, CONTENT_KEYS)
        assert before == props


big_strings = st.builds(lambda n, c: c * n, st.integers(0, 10_000), st.sampled_from('a中\n😀"é'))
content = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
    | big_strings,
    lambda children: (
        st.lists(children, max_size=30)
        | st.dictionaries(st.text(max_size=10), children, max_size=10)
    ),
    max_leaves=40,
)


class TestFitProperties:
    @settings(max_examples=100, deadline=None)
    @given(
        st.dictionaries(st.sampled_from(sorted(CONTENT_KEYS)), content, max_size=5),
        st.integers(1000, 60_000),
    )
    def test_always_valid_json_under_max_bytes(self, props_content: Any, max_bytes: int) -> None:
        """For any content and any limit of at least 1000 bytes, the result is JSON that fits."""
        props = {"$ai_trace_id": "t" * 36, "$ai_model": "m", **props_content}
        before = copy.deepcopy(props)
        result, truncated = fit_event(props, max_bytes, CONTENT_KEYS)
        assert size(result) <= max_bytes
        assert result == json.loads(json.dumps(result, allow_nan=False))
        assert truncated == (size(props) > max_bytes)
        assert before == props
        expected = "t" * 36
        assert expected == result["$ai_trace_id"]


@pytest.mark.parametrize("max_bytes", [1000, 5000, 800_000])
def test_error_string_is_cut(max_bytes: int) -> None:
    """A huge $ai_error is cut like any other content."""
    result, _ = fit_event(event(error="E" * 2_000_000), max_bytes, CONTENT_KEYS)
    assert result["$ai_error"].startswith("EEE")
    assert size(result) <= max_bytes


any_text = st.text(st.characters(exclude_categories=()), max_size=50)
any_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | any_text,
    lambda children: (
        st.lists(children, max_size=8)
        | st.dictionaries(any_text | st.integers(), children, max_size=8)
    ),
    max_leaves=40,
)


class TestSizeBound:
    @settings(max_examples=150, deadline=None)
    @given(any_json)
    def test_bound_is_never_below_the_real_size(self, value: Any) -> None:
        """The cheap size bound that lets small events skip measuring is a true upper bound."""
        bound = _bound(value, 10**9, 0)
        assert bound == -1 or bound >= size(value)

    def test_bound_gives_up_on_non_json(self) -> None:
        """Non-finite floats, non-str keys and other types make the bound give up."""
        values = ([math.inf], {1: 2}, (1,), {"a": math.nan}, {"a": -math.inf}, {"a": 1, 2: 3})
        expected = [-1] * len(values)
        assert expected == [_bound(v, 10**9, 0) for v in values]

    def test_bound_of_keys_that_are_str_subclasses(self) -> None:
        """A key of a ``str`` subclass is written as its text: bounded like any string key."""

        class Key(str):
            pass

        value = {Key("ключ"): 1.5, Key("k"): {}, "\U0001f600": []}
        bound = _bound(value, 10**9, 0)
        assert bound >= size(value)


class TestEarlierCuts:
    def test_string_marker_counts_the_snapshot_cut(self) -> None:
        """A string to_json_safe already cut gets one marker counting both cuts."""
        text = "x" * 10_000 + TRUNCATION_MARKER.format(n="990,000")
        result, _ = fit_event(event(input=text), 5000, CONTENT_KEYS)
        cut = result["$ai_input"]
        kept = cut.index("…")
        expected = TRUNCATION_MARKER.format(n=f"{1_000_000 - kept:,}")
        assert expected == cut[kept:]
        assert cut.count("…") == 1

    def test_list_marker_counts_the_snapshot_cut(self) -> None:
        """A list to_json_safe already cut ends with one marker counting both cuts."""
        items = [f"item {i}" for i in range(10_000)] + [LIST_TRUNCATION_MARKER.format(n="90,000")]
        result, _ = fit_event(event(input=items), 20_000, CONTENT_KEYS)
        cut = result["$ai_input"]
        expected = LIST_TRUNCATION_MARKER.format(n=f"{100_000 - (len(cut) - 1):,}")
        assert expected == cut[-1]
        assert items[: len(cut) - 1] == cut[:-1]

    def test_long_float_list_fits(self) -> None:
        """A long list of floats nested in an argument dict is cut to a prefix that fits."""
        floats = [i / 7 for i in range(200_000)]
        result, _ = fit_event(event(input={"args": [floats]}), 50_000, CONTENT_KEYS)
        cut = result["$ai_input"]["args"][0]
        assert floats[: len(cut) - 1] == cut[:-1]
        assert cut[-1].startswith("…[truncated 19")
        assert 50_000 >= size(result) > 49_000


number_lists = st.lists(
    st.floats(allow_nan=False, allow_infinity=False)
    | st.floats(1e-6, 1e-4)
    | st.integers(-(2**53), 2**53),
    min_size=65,
    max_size=400,
)


class TestNumberLists:
    """Long lists of numbers are measured from pydantic-core's output, not float by float."""

    @settings(max_examples=150, deadline=None)
    @given(number_lists, st.booleans())
    def test_item_sizes_are_what_json_writes(self, numbers: list[Any], cut: bool) -> None:
        """Each number's size is its json.dumps size, also "1e-05" and "1e+16" forms."""
        items = [*numbers, LIST_TRUNCATION_MARKER.format(n="5")] if cut else numbers
        expected = [size(item) for item in items]
        assert expected == _limits._item_sizes(items)
        assert size(items) == _limits._measure({"args": [items]}) - len('{"args": []}')

    def test_other_lists_are_measured_by_json(self) -> None:
        """Mixed types, bools and non-finite floats are left to json."""
        for items in ([1.0] * 70 + [True], [1.0] * 70 + [math.nan], ["a"] * 70, [1.0, "a"] * 40):
            assert _limits._item_sizes(items) is None

    @settings(max_examples=60, deadline=None)
    @given(number_lists, st.integers(1000, 6000))
    def test_cut_is_the_one_json_measuring_makes(self, numbers: list[Any], max_bytes: int) -> None:
        """fit_event cuts a number list exactly as when every item is measured with json."""
        props = event(input={"args": [numbers * 5]})
        fast = fit_event(props, max_bytes, CONTENT_KEYS)
        real = _limits._item_sizes
        _limits._item_sizes = lambda items: None  # measure everything with json
        try:
            slow = fit_event(props, max_bytes, CONTENT_KEYS)
        finally:
            _limits._item_sizes = real
        assert slow == fast
        assert size(fast[0]) <= max_bytes


class TestKnownBounds:
    """`fit_event` takes size bounds known beforehand, for the very values they were made for."""

    def test_known_bound_skips_the_walk(self) -> None:
        """A value whose known bound fits is not walked: the same dict comes back."""
        messages: list[Any] = [{"role": "user", "content": "hi"}, {"no": math.inf}]
        props = event(input=messages)
        # Walked, the infinity makes the bound give up: the value is measured and converted.
        walked, _ = fit_event(props, 10_000, CONTENT_KEYS)
        known, truncated = fit_event(props, 10_000, CONTENT_KEYS, {"$ai_input": (messages, 100)})
        expected = ("Infinity", True, False)
        assert expected == (walked["$ai_input"][1]["no"], known is props, truncated)

    def test_bound_of_another_value_is_ignored(self) -> None:
        """A bound recorded for another object does not let an oversized value through."""
        big = ["x" * 5_000] * 10
        props = event(input=big)
        result, truncated = fit_event(props, 2_000, CONTENT_KEYS, {"$ai_input": (list(big), 10)})
        assert truncated
        assert size(result) <= 2_000


class TestLargeDictSizes:
    """A large dict of numbers (a cut snapshot's) is measured as json writes it."""

    @settings(max_examples=150, deadline=None)
    @given(
        st.dictionaries(
            st.text(max_size=8),
            st.one_of(
                st.integers(-(2**53), 2**53), st.floats(allow_nan=False, allow_infinity=False)
            ),
            min_size=65,
            max_size=200,
        ),
        st.booleans(),
    )
    def test_measure(self, mapping: dict[str, Any], marked: bool) -> None:
        """Keys of any text (escapes, non-ASCII), numeric values, and a snapshot's "…" entry."""
        if marked:
            mapping["…"] = "…[truncated 12 keys]"
        expected = len(json.dumps({"args": [mapping]}).encode())
        assert expected == _limits._measure({"args": [mapping]})
        assert [len(json.dumps(key)) for key in mapping] == _limits._key_sizes(mapping)
