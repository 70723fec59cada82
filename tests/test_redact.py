import copy
import re
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from hogtrace import _redact
from hogtrace._redact import (
    REDACTED,
    add_secret_patterns,
    is_secret_key,
    redact_secrets,
    redact_text,
    reset_secret_patterns,
)
from hogtrace._serialize import to_json_safe

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
    "aws_secret_access_key",
    "github_token",
    "slackToken",
    "passphrase",
    "ssh_passphrase",
    "x-api-key",
    "set-cookie",
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
    "bos_token",
    "next_token",
    "max_new_tokens",
    "prompt_tokens",
    "completion_tokens",
    "output_tokens_details",
    "token_usage",
    "id",
    "count",
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

    @pytest.mark.parametrize("value", [None, 1, "Bearer of bad news", 2.5, True])
    def test_scalars_without_secrets_are_returned_as_is(self, value: Any) -> None:
        """Scalars without a secret, even bearer-looking text, come back unchanged."""
        assert value == redact_secrets(value)

    def test_header_pairs_are_redacted_by_name(self) -> None:
        """Headers given as (name, value) pairs are redacted like header dicts."""
        headers = [("Authorization", "Bearer x"), ("Cookie", "a=b"), ("Accept", "*/*")]
        expected = {
            "headers": [["Authorization", REDACTED], ["Cookie", REDACTED], ["Accept", "*/*"]]
        }
        assert expected == redact_secrets(to_json_safe({"headers": headers}))

    def test_args_list_and_namespace(self) -> None:
        """Secrets in *args lists and SimpleNamespace fields are redacted."""
        from types import SimpleNamespace

        value = {"args": ["key sk-abcdefgh1234ijkl5678mn", SimpleNamespace(client_secret="s", n=3)]}
        expected = {"args": [f"key {REDACTED}", {"client_secret": REDACTED, "n": 3}]}
        assert expected == redact_secrets(to_json_safe(value))


FREE_TEXT = [
    ("Authorization: Bearer abc.def-123_ghi", f"Authorization: Bearer {REDACTED}"),
    ("BEARER eyJhbGciOi.J9xyz123", f"BEARER {REDACTED}"),
    ("https://bob:hunter2@db.example.com:5432/x", f"https://{REDACTED}@db.example.com:5432/x"),
    ("base_url=http://u:p@proxy/v1", f"base_url=http://{REDACTED}@proxy/v1"),
    ("redis://:hunter2@localhost:6379/0", f"redis://{REDACTED}@localhost:6379/0"),  # no user
    ("key sk-abc123def456ghi789jkl0", f"key {REDACTED}"),
    ("sk-proj-AbC123_xyz-9876543210", REDACTED),
    ("sk-ant-api03-AbCdEf123456", REDACTED),
    (
        "Error code: 401 - Incorrect API key provided: sk-proj-****abcd. You can find it",
        f"Error code: 401 - Incorrect API key provided: {REDACTED}. You can find it",
    ),
    ("posthog phc_AbCdEfGhIjKlMnOpQrSt123 here", f"posthog {REDACTED} here"),
    ("phx_AbCdEfGhIjKlMnOpQrSt123", REDACTED),
    ("token ghp_abcdefghijklmnopqrstuvwxyz0123", f"token {REDACTED}"),
    ("xoxb-123456789012-abcdefghij", REDACTED),
    ("xoxp-123456789012-abcdefghij", REDACTED),
    ("aws AKIAIOSFODNN7EXAMPLE.", f"aws {REDACTED}."),
    (
        "token=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9P",
        f"token={REDACTED}",
    ),
    # Unsigned ("alg": "none": no signature after the second dot) and encrypted (five parts).
    ("tok eyJhbGciOiJub25lIn0.eyJzdWIiOiIxMjM0NTYifQ. end", f"tok {REDACTED} end"),
    (
        "jwe eyJhbGciOiJkaXIifQ..48V1_ALb6US04U3b.5eym8TW_c8SuK0ltJ3rp.XFBoMYUZodetZd",
        f"jwe {REDACTED}",
    ),
    (
        "psql host=db user=app password=hunter2 dbname=x",
        f"psql host=db user=app password={REDACTED} dbname=x",
    ),
    ("DB_PASSWORD=s3cret! ./run", f"DB_PASSWORD={REDACTED} ./run"),
    ('{"user": "a", "password": "hunter2"}', f'{{"user": "a", "password": "{REDACTED}"}}'),
    ("{'password': 'hunter2', 'n': 1}", f"{{'password': '{REDACTED}', 'n': 1}}"),
    (
        "curl -H 'Authorization: Basic dXNlcjpwYXNz' x",
        f"curl -H 'Authorization: Basic {REDACTED}' x",
    ),
    ('{"authorization": "Basic dXNlcjpwYXNzd29yZA=="}', f'{{"authorization": "Basic {REDACTED}"}}'),
    (
        "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        f"aws_secret_access_key = {REDACTED}",
    ),
    (
        "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        f"AWS_SECRET_ACCESS_KEY={REDACTED}",
    ),
]

NOT_SECRETS = [
    "The bearer of this letter",
    "Bearer tokens are described in RFC 6750",
    "pip install scikit-learn; import sklearn",
    "task-1234 and ask-me-anything",
    "see https://example.com/a@b and mailto:me@example.com",
    "git clone ssh://git@github.com/org/repo.git",
    "release sk-20240115-blue, SKU: sk-00012345",  # short: not keys
    "xoxo-see-you-tomorrow",
    "trace 0192f3c4-5b6a-7c8d-9e0f-123456789abc, 512 input tokens",
    "AKIA is a prefix",
    "Basic HTTPS setup and basic eyJ stuff, Learn basic JavaScript",
    "eyJhbGciOiJIUzI1NiJ9 alone is only a header",
    "Your password is strong; password: must be 8 characters; PASSWORD RESET",
    "Basic authorization is described in RFC 7617",
    "the secret_access_key field is required",
]


class TestNotSecretsUnderSecretNames:
    def test_logprob_tokens_are_text(self) -> None:
        """OpenAI logprobs name each token's text ``token``, beside its ``logprob``."""
        value = {
            "logprobs": {
                "content": [
                    {
                        "token": "Hello",
                        "logprob": -0.1,
                        "bytes": [72],
                        "top_logprobs": [{"token": "Hi", "logprob": -2.3, "bytes": [72, 105]}],
                    }
                ]
            }
        }
        assert value is redact_secrets(value)

    def test_counts_under_token_names_are_kept(self) -> None:
        value = {"cached_token": 4, "prompt_token": 12, "ratio_token": 0.5, "csrf_token": "x9f2"}
        expected = {**value, "csrf_token": REDACTED}
        assert expected == redact_secrets(value)

    def test_a_token_without_a_logprob_is_still_a_secret(self) -> None:
        assert {"token": REDACTED, "password": REDACTED} == redact_secrets(
            {"token": "abc", "password": 1234}
        )


class TestFreeText:
    @pytest.mark.parametrize(("text", "expected"), FREE_TEXT)
    def test_secret_part_is_replaced(self, text: str, expected: str) -> None:
        """Only the secret part of free text is replaced, keeping its context."""
        assert expected == redact_secrets(text)

    @pytest.mark.parametrize("text", NOT_SECRETS)
    def test_ordinary_text_is_kept(self, text: str) -> None:
        """Text without secrets, ids and counts included, is returned as the same object."""
        assert text is redact_secrets(text)

    def test_strings_inside_containers(self) -> None:
        """Secrets in message contents and error strings nested in containers are replaced."""
        value = {"messages": [{"role": "user", "content": "use sk-abcdefgh12345678ijklmn"}]}
        expected = {"messages": [{"role": "user", "content": f"use {REDACTED}"}]}
        assert expected == redact_secrets(value)

    def test_number_lists_are_returned_as_is(self) -> None:
        """A long list of numbers is returned as the same object."""
        value = [0.5] * 1000
        assert value is redact_secrets(value)


class TestAddedPatterns:
    def test_added_key_and_value_patterns(self) -> None:
        """Added key and value patterns redact, and resetting forgets them."""
        value = {"internal_ref": "r1", "note": "acct=12345 ok"}
        add_secret_patterns(key_patterns=[r"^internal_ref$"], value_patterns=[r"(?<=acct=)\d+"])
        try:
            redacted = redact_secrets(value)
        finally:
            reset_secret_patterns()
        expected = ({"internal_ref": REDACTED, "note": f"acct={REDACTED} ok"}, value)
        assert expected == (redacted, redact_secrets(value))

    def test_invalid_pattern_adds_nothing(self) -> None:
        """A pattern that does not compile raises and leaves the patterns as they were."""
        with pytest.raises(re.error):
            add_secret_patterns(key_patterns=["ok"], value_patterns=["("])
        assert not is_secret_key("ok")
        assert "ok" == redact_text("ok")

    @pytest.mark.parametrize(
        ("pattern", "text"),
        [
            (re.compile("secretword", re.IGNORECASE), "a SECRETWORD here"),  # its flags kept
            (r"(?i)secretword", "a SecretWord here"),  # inline flags, at its own start
            (re.compile(r"secret word  # a comment", re.VERBOSE), "a secretword here"),
            (r"(z)\1", "a zz here"),  # its own group numbers, after another pattern's
            (r"(?P<n>q)(?P=n)", "a qq here"),  # a group name another pattern also uses
        ],
    )
    def test_each_added_pattern_keeps_its_own_meaning(
        self, pattern: str | re.Pattern[str], text: str
    ) -> None:
        add_secret_patterns(value_patterns=[r"(a)\1", r"(?P<n>b)(?P=n)", pattern])
        try:
            assert text.replace(text.split()[1], REDACTED) == redact_text(text)
            assert f"{REDACTED} {REDACTED}" == redact_text("aa bb")
        finally:
            reset_secret_patterns()

    @pytest.mark.parametrize("pattern", [r"x*", r"(a|)", ""])
    def test_a_pattern_matching_the_empty_string_is_refused(self, pattern: str) -> None:
        """It would put the marker between every two characters of every string."""
        with pytest.raises(ValueError, match="matches the empty string"):
            add_secret_patterns(value_patterns=[r"ok\d", pattern])
        assert "ok1" == redact_text("ok1")

    def test_an_empty_match_inside_text_replaces_nothing(self) -> None:
        """A pattern that matches nothing on its own but can match empty inside some text (a
        bare lookahead) does not insert markers there."""
        add_secret_patterns(value_patterns=[r"(?=acct)", r"(?<=pin=)\d*"])
        try:
            assert "acct=1 pin= pin=[REDACTED]" == redact_text("acct=1 pin= pin=42")
        finally:
            reset_secret_patterns()

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


def not_a_secret(key: str, value: Any, mapping: dict[str, Any]) -> bool:
    """The documented exceptions: a number (or null) under a ``*token`` name, a logprob's token."""
    if key == "token" and "logprob" in mapping:
        return True
    last = re.sub(r"([a-z])([A-Z])", r"\1_\2", key).lower().replace("-", "_").split("_")[-1]
    return last == "token" and (value is None or isinstance(value, (int, float)))


def contains_unredacted_secret(value: Any) -> bool:
    if isinstance(value, list):
        return any(contains_unredacted_secret(item) for item in value)
    if isinstance(value, dict):
        return any(
            (is_secret_key(k) and v != REDACTED and not not_a_secret(k, v, value))
            or contains_unredacted_secret(v)
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


texts_with_secrets = st.sampled_from([text for text, _ in FREE_TEXT] + NOT_SECRETS) | st.text(
    max_size=12
)
content_values = st.recursive(
    st.none() | st.floats(allow_nan=False) | texts_with_secrets,
    lambda children: (
        st.lists(children, max_size=4)
        | st.lists(st.floats(allow_nan=False), min_size=65, max_size=70).map(
            lambda numbers: [*numbers, "…[truncated 9 items]"]
        )
        | st.dictionaries(
            st.sampled_from(SECRET_KEYS[:3] + PUBLIC_KEYS) | st.text(max_size=8), children
        )
    ),
    max_leaves=25,
)


class TestWholeValueCheck:
    """redact_secrets first checks the whole value at once; the result is the same."""

    @settings(max_examples=300, deadline=None)
    @given(content_values)
    def test_same_result_as_redacting_each_string(self, value: Any) -> None:
        """Checking all strings joined finds every secret that checking each one finds."""
        expected = (
            _redact._redact_dict(value, 0)
            if type(value) is dict
            else _redact._redact_list(value, 0)
            if type(value) is list
            else redact_text(value)
            if type(value) is str
            else value
        )
        assert expected == redact_secrets(value)

    def test_content_without_secrets_is_returned_as_is(self) -> None:
        """Messages without secrets are not copied."""
        messages = [
            {"role": "user", "content": f"message {i}: see http://x.io/a-b_c"} for i in range(50)
        ]
        assert redact_secrets(messages) is messages

    def test_one_secret_among_many_messages(self) -> None:
        """A key in the 40th of 50 messages is found and only that message changes."""
        messages = [{"role": "user", "content": f"message {i}"} for i in range(50)]
        messages[40]["content"] = "my key is sk-proj-abc123def456ghi"
        result = redact_secrets(messages)
        assert f"my key is {REDACTED}" == result[40]["content"]
        assert result[39] is messages[39]


class TestRememberedCleanText:
    """Strings found free of secrets are remembered by hash: a resent history is scanned once."""

    @pytest.fixture(autouse=True)
    def scans(self, monkeypatch: pytest.MonkeyPatch) -> list[str]:
        """The texts the built-in patterns are run on, starting from an empty memory."""
        _redact._clean.clear()
        seen: list[str] = []
        real = _redact._has_secret

        def spy(text: str) -> bool:
            seen.append(text)
            return real(text)

        monkeypatch.setattr(_redact, "_has_secret", spy)
        return seen

    def test_history_is_scanned_once(self, scans: list[str]) -> None:
        """A resent message, even as a new but equal string, is not scanned again."""
        history = [{"role": "user", "content": "x" * 300}, {"role": "assistant", "content": "ok"}]
        assert history is redact_secrets(history)
        resent = [dict(m, content="".join(m["content"])) for m in history]
        longer = [*resent, {"role": "user", "content": "and then?"}]
        assert resent is redact_secrets(resent)
        assert longer is redact_secrets(longer)
        expected = ["user\n" + "x" * 300 + "\nassistant\nok", "and then?"]
        assert expected == scans

    def test_plain_messages_share_the_memory(self, scans: list[str]) -> None:
        """The event builder's check of plain messages remembers and reads the same strings."""
        texts = ["user", "y" * 300]
        expected = (True, True, True)
        messages = [{"role": "user", "content": "y" * 300}]
        assert expected == (
            _redact.plain_messages_clean(texts),
            _redact.plain_messages_clean(list(texts)),
            redact_secrets(messages) is messages,
        )
        assert ["user\n" + "y" * 300] == scans

    def test_text_with_a_secret_is_never_remembered(self, scans: list[str]) -> None:
        """A secret is found on every call; only clean strings are remembered."""
        leaky = [{"role": "user", "content": "my key is sk-proj-abc123def456ghi"}]
        expected = [{"role": "user", "content": f"my key is {REDACTED}"}] * 2
        assert expected == [redact_secrets(leaky)[0], redact_secrets(leaky)[0]]
        assert hash(leaky[0]["content"]) not in _redact._clean
        assert 2 == len(scans)

    def test_only_hashes_are_kept_and_the_memory_is_bounded(self) -> None:
        """No content stays in memory, and the memory does not grow without limit."""
        for i in range(_redact._MAX_CLEAN + 50):
            redact_secrets([f"message {i}"])
        assert all(type(item) is int for item in _redact._clean)
        assert len(_redact._clean) <= _redact._MAX_CLEAN + 1

    def test_changing_the_patterns_forgets(self) -> None:
        """Added and reset patterns clear the memory, and added ones apply to seen text."""
        note = ["acct=12345 " + "z" * 300]
        assert note is redact_secrets(note)
        add_secret_patterns(value_patterns=[r"(?<=acct=)\d+"])
        try:
            assert not _redact._clean
            assert [f"acct={REDACTED} " + "z" * 300] == redact_secrets(note)
        finally:
            reset_secret_patterns()
        assert note is redact_secrets(note)


_KEY_PARTS = [
    *("api", "Api", "API", "key", "Key", "KEY", "token", "Token", "secret", "pass", "phrase"),
    *("Phrase", "word", "pwd", "auth", "orization", "x", "id", "Id", "access", "cookie", "s"),
    *("eos", "input", "max", "bearer", "credentials", "2", "10", "-", "_", ".", " ", "!", "é"),
]


class TestKeyDecisionShortcut:
    @settings(max_examples=2_000, deadline=None)
    @given(st.lists(st.sampled_from(_KEY_PARTS), min_size=1, max_size=6).map("".join))
    @example("passPhrase")
    @example("pass.phrase")
    @example("api_key_2")
    @example("x-api-key")
    @example("googleIdToken")
    @example("eos_token")
    @example("apiKeY")
    @example("api keyé")
    @example("Authorization!")
    def test_same_decision_as_splitting_words(self, key: str) -> None:
        """Rejecting keys that end in no secret name decides as the word rules do."""
        shortcut = _redact._decide(key)
        never = re.compile("(?!)")  # an added key pattern that matches nothing: no shortcut
        saved = _redact._extra_keys
        _redact._extra_keys = (never,)
        try:
            assert shortcut == _redact._decide(key)
        finally:
            _redact._extra_keys = saved


class TestRepeatedKeys:
    """Values under a key that occurs twice (a repeated header) are redacted under its name.

    Found by a helper's review: naming the second one by its repr() ("'pwd'") let it past
    names that are secret only on their own and anchored key patterns.
    """

    def test_repeated_secret_header(self) -> None:
        from starlette.datastructures import Headers

        headers = Headers(raw=[(b"bearer", b"t1"), (b"accept", b"x"), (b"bearer", b"t2")])
        assert {"bearer": REDACTED, "accept": "x"} == redact_secrets(to_json_safe(headers))

    def test_enum_key_beside_its_value(self) -> None:
        import enum

        class Field(enum.Enum):
            PWD = "pwd"

        value = {Field.PWD: "hunter2", "pwd": "hunter3"}
        assert {"pwd": REDACTED} == redact_secrets(to_json_safe(value, 5_000))
