import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hogtrace._redact import REDACTED, is_secret_key, redact_secrets

SECRET_KEYS = [
    "api_key",
    "apikey",
    "api-key",
    "apiKey",
    "APIKey",
    "X-Api-Key",
    "x_api_key",
    "OPENAI_API_KEY",
    "anthropicApiKey",
    "api_key_2",
    "Authorization",
    "Proxy-Authorization",
    "password",
    "db_password",
    "passwd",
    "pwd",
    "secret",
    "client_secret",
    "clientSecret",
    "webhook_secret",
    "secrets",
    "SECRET_KEY",
    "access_token",
    "refresh_token",
    "id_token",
    "googleIdToken",
    "auth_token",
    "token",
    "Token",
    "cookie",
    "Set-Cookie",
    "session_cookie",
    "private_key",
    "session_token",
    "credentials",
    "aws_credentials",
    "bearer",
]

PUBLIC_KEYS = [
    "input_tokens",
    "output_tokens",
    "max_tokens",
    "total_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
    "reasoning_tokens",
    "token_count",
    "tokens",
    "tokenizer",
    "eos_token",
    "pad_token",
    "session_id",
    "trace_id",
    "$ai_trace_id",
    "$ai_session_id",
    "$ai_input_tokens",
    "secret_name",
    "old_pwd",
    "key",
    "role",
    "content",
    "authorized",
    "password_policy",
]


class TestIsSecretKey:
    @pytest.mark.parametrize("key", SECRET_KEYS)
    def test_secret_keys(self, key: str) -> None:
        """Secret-looking keys are detected in any spelling."""
        assert is_secret_key(key)

    @pytest.mark.parametrize("key", PUBLIC_KEYS)
    def test_ids_counts_and_lookalikes_are_not_secret(self, key: str) -> None:
        """Ids, token counts and look-alike names are not secrets."""
        assert not is_secret_key(key)


class TestRedactSecrets:
    def test_top_level_key(self) -> None:
        """A value under a secret key is replaced."""
        expected = {"api_key": REDACTED, "model": "gpt"}
        assert expected == redact_secrets({"api_key": "sk-123", "model": "gpt"})

    def test_headers_dict(self) -> None:
        """Header-style keys inside a nested headers dict are replaced."""
        value = {"headers": {"Authorization": "Bearer sk-1", "X-Api-Key": "k", "Accept": "*/*"}}
        expected = {"headers": {"Authorization": REDACTED, "X-Api-Key": REDACTED, "Accept": "*/*"}}
        assert expected == redact_secrets(value)

    def test_nested_lists_and_dicts(self) -> None:
        """Secrets inside dicts inside lists inside dicts are found."""
        value = {"calls": [{"args": {"password": "hunter2", "user": "bob"}}, "plain"]}
        expected = {"calls": [{"args": {"password": REDACTED, "user": "bob"}}, "plain"]}
        assert expected == redact_secrets(value)

    def test_whole_container_under_secret_key(self) -> None:
        """A container under a secret key is replaced as a whole."""
        expected = {"credentials": REDACTED}
        assert expected == redact_secrets({"credentials": {"user": "a"}})

    def test_ids_and_counts_are_kept(self) -> None:
        """Token counts and ids survive redaction unchanged."""
        value = {
            "usage": {"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 2},
            "session_id": "s-1",
            "trace_id": "t-1",
            "max_tokens": 100,
        }
        assert value == redact_secrets(value)

    def test_unchanged_value_is_returned_as_is(self) -> None:
        """A value without secrets is returned as the same object."""
        value = {"a": [{"b": 1}], "c": "d"}
        assert value is redact_secrets(value)

    def test_untouched_branches_are_shared(self) -> None:
        """Only containers on the path to a secret are copied."""
        untouched = {"b": [1, 2]}
        value = {"untouched": untouched, "nested": {"token": "t"}}
        result = redact_secrets(value)
        assert untouched is result["untouched"]

    def test_input_is_not_mutated(self) -> None:
        """Redaction never mutates its input."""
        value = {"headers": {"Authorization": "x"}, "items": [{"secret": "s"}]}
        before = copy.deepcopy(value)
        redact_secrets(value)
        assert before == value

    @pytest.mark.parametrize("value", [None, 1, "Bearer sk-123", 2.5, True])
    def test_scalars_are_returned_as_is(self, value: Any) -> None:
        """Scalars, even bearer-looking strings, are not redacted: redaction is key-based."""
        assert value == redact_secrets(value)

    def test_cyclic_input_does_not_recurse_forever(self) -> None:
        """A cyclic structure does not raise RecursionError."""
        value: dict[str, Any] = {"password": "p"}
        value["self"] = value
        result = redact_secrets(value)
        expected = REDACTED
        assert expected == result["password"]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(SECRET_KEYS + PUBLIC_KEYS) | st.text(max_size=8), children
        )
    ),
    max_leaves=25,
)


def contains_unredacted_secret(value: Any) -> bool:
    if isinstance(value, list):
        return any(contains_unredacted_secret(item) for item in value)
    if isinstance(value, dict):
        return any(
            (is_secret_key(k) and v != REDACTED) or contains_unredacted_secret(v)
            for k, v in value.items()
        )
    return False


class TestRedactProperties:
    @settings(max_examples=150, deadline=None)
    @given(json_values)
    def test_no_secret_survives_and_input_is_kept(self, value: Any) -> None:
        """After redaction no secret key holds a value, and the input is unchanged."""
        before = copy.deepcopy(value)
        result = redact_secrets(value)
        assert before == value
        assert not contains_unredacted_secret(result)
