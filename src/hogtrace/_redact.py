"""Built-in redaction of secrets in captured content, by key and in free text.

A value is redacted when its key looks like a secret. Keys are compared case-insensitively and
ignoring ``-`` and ``_``, so ``X-Api-Key``, ``x_api_key`` and ``xApiKey`` are the same key. A key
is secret when it is one of `_EXACT` (``token``, ``pwd``, ...), or when its last words spell one
of `_SUFFIXES` (``openai_api_key``, ``db_password``, ``googleIdToken``). Counts and ids such as
``input_tokens``, ``max_tokens``, ``session_id`` or ``eos_token`` are never secret; any other key
whose last word is ``token`` is. Headers given as ``[name, value]`` pairs are redacted by name.

Strings are also scanned for secrets that `SECRET_VALUE_PATTERNS` recognise (API keys,
bearer tokens, JSON Web Tokens, passwords in URLs and after ``password``, Basic credentials,
AWS secret keys), and only the secret
part is replaced: ``"Bearer [REDACTED]"``, ``"https://[REDACTED]@host/"``. A pattern runs
only on strings holding its gate, and each starts with a literal, so plain text costs a few
fast scans. `add_secret_patterns` adds key and value patterns of the user's own.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

__all__ = [
    "plain_messages_clean",
    "set_secret_patterns",
    "REDACTED",
    "SECRET_VALUE_PATTERNS",
    "add_secret_patterns",
    "compile_patterns",
    "is_secret_key",
    "redact_secrets",
    "redact_text",
    "reset_secret_patterns",
]

REDACTED = "[REDACTED]"

SECRET_VALUE_PATTERNS: tuple[tuple[str, str, str], ...] = (
    # (name, regex whose group 1 is the secret, a substring every match contains or "").
    # Each regex starts with a literal, which CPython's re scans for fast; a lookbehind placed
    # after it checks what precedes. One alternation of them all is ~300x slower to search.
    ("url credentials", r"://([^\s/@:]*:[^\s/@]+)@", "@"),  # "redis://:pw@" too
    ("bearer token", r"earer (?<=[Bb]earer )((?=[\w\-.~+/*]*[0-9*])[\w\-.~+/*]{8,}=*)", "earer "),
    ("bearer token", r"EARER (?<=BEARER )((?=[\w\-.~+/*]*[0-9*])[\w\-.~+/*]{8,}=*)", "E"),
    # OpenAI (sk-, sk-proj-, also masked: "sk-proj-****abcd") and Anthropic (sk-ant-) keys.
    # A key is 20+ characters with a digit; a masked one ("sk-proj-****abcd", in the SDK's 401
    # message) is shorter but has a "*". "sk-20240115-blue" and "SKU: sk-00012345" are not keys.
    ("sk- api key", r"(sk-(?<![\w-]sk-)(?:(?=[\w-]*[0-9])[\w-]{20,}|[\w-]*\*[\w\-*]*))", "-"),
    ("posthog key", r"(ph[cx]_(?<![\w-]ph._)[A-Za-z0-9]{16,})", "_"),
    ("github token", r"(gh[pousr]_(?<![\w-]gh._)[A-Za-z0-9]{20,})", "_"),
    ("github token", r"(github_pat_(?<![\w-]github_pat_)\w{20,})", "_"),
    ("slack token", r"(xox[abposr]-(?<![\w-]xox.-)(?=[A-Za-z-]*[0-9])[A-Za-z0-9-]{10,})", "-"),
    ("aws access key id", r"(A[KS]IA(?<![A-Z0-9]A[KS]IA)[A-Z0-9]{16})(?![A-Z0-9])", "A"),
    # A JSON Web Token: three base64url parts, the header and payload JSON objects ("eyJ"),
    # the signature empty in an unsigned one ("alg": "none"); or an encrypted one (JWE): the
    # header, then four parts (the key's may be empty).
    (
        "json web token",
        r"(eyJ(?<![\w-]eyJ)[\w-]{8,}\."
        r"(?:eyJ[\w-]{8,}\.(?:[\w-]{8,}|(?![\w-]))|[\w-]*(?:\.[\w-]{8,}){3}))",
        "J",
    ),
    # A password given in text: "password=...", "password": "...", 'password': '...'.
    ("password", r"ssword(?<=[Pp]assword)(?:=|[\"']?\s*:\s*[\"'])([^\s&;,'\"]+)", "ssword"),
    ("password", r"SSWORD(?<=PASSWORD)(?:=|[\"']?\s*:\s*[\"'])([^\s&;,'\"]+)", "SSWORD"),
    # HTTP Basic credentials after an Authorization header's name (base64 of "user:pass").
    (
        "basic credentials",
        r"uthorization(?<=[Aa]uthorization)[\"']?\s*[:=]\s*[\"']?[Bb]asic ([A-Za-z0-9+/]{4,}=*)",
        "uthorization",
    ),
    # An AWS secret access key: 40 base64 characters after its name.
    (
        "aws secret access key",
        r"ccess_key(?<=[Ss]ecret_access_key)[\"']?\s*[=:]\s*[\"']?([A-Za-z0-9/+]{40})(?![\w/+])",
        "ccess_key",
    ),
    (
        "aws secret access key",
        r"CCESS_KEY(?<=SECRET_ACCESS_KEY)[\"']?\s*[=:]\s*[\"']?([A-Za-z0-9/+]{40})(?![\w/+])",
        "CCESS_KEY",
    ),
)
"""The built-in free-text patterns: a name, a regex whose first group is the secret (the rest
of a match is kept), and a substring every match contains ("" if none): a string without it
is not searched with that regex. Single-character checks are ``memchr`` fast (a capital
letter is rare enough in prose), a longer one costs about as much as a regex search."""

# Secret names that also count as the last words of a longer key.
_SUFFIXES = frozenset(
    {
        "apikey",
        "authorization",
        "password",
        "passwd",
        "secret",
        "secretkey",
        "privatekey",
        "accesstoken",
        "refreshtoken",
        "idtoken",
        "authtoken",
        "sessiontoken",
        "credentials",
        "cookie",
        "passphrase",
        "secretaccesskey",
        "token",
    }
)
# Names that are secret only on their own: "old_pwd" is not.
_EXACT = _SUFFIXES | {"pwd", "bearer", "secrets", "xapikey", "clientsecret"}
# Tokenizer vocabulary, not credentials: "eos_token", "pad_token", "next_token".
_NOT_SECRET_TOKENS = frozenset(
    {"eos", "bos", "pad", "unk", "sep", "cls", "mask", "start", "end", "stop", "special"}
    | {"next", "first", "last", "new", "max", "min", "num", "count", "total", "input", "output"}
)

_LONG = 64
_NUMBERS = frozenset({int, float, bool, type(None)})
_WORDS = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")
_MAX_DEPTH = 256


_decisions: dict[str, bool] = {}
_MAX_DECISIONS = 4096


def is_secret_key(key: str) -> bool:
    """Tell whether values under ``key`` should be redacted; decisions are cached per key.

    Args:
        key: A mapping key, such as ``"Authorization"`` or ``"input_tokens"``.

    Returns:
        True if the key names a secret (see the module docstring for the rule).
    """
    decision = _decisions.get(key)
    if decision is None:
        decision = _decide(key)
        if len(_decisions) >= _MAX_DECISIONS:
            _decisions.clear()
        _decisions[key] = decision
    return decision


#: Deletes what is not a small ASCII letter: what is left of a secret key ends with one of
#: `_EXACT` (its last words, which are letters; digits and separators between them dropped).
_LETTERS_ONLY = {code: None for code in range(128) if not chr(code).islower()}
_ENDINGS = tuple(_EXACT)


def _decide(key: str) -> bool:
    """Apply the exact-name and last-words rules to ``key``."""
    lowered = key.lower()
    # Most keys end in no secret name: one C-speed check instead of splitting words.
    if (
        not _extra_keys
        and key.isascii()
        and not lowered.translate(_LETTERS_ONLY).endswith(_ENDINGS)
    ):
        return False
    if lowered.replace("-", "").replace("_", "") in _EXACT:
        return True
    if _extra_keys and any(regex.search(key) for regex in _extra_keys):
        return True
    words = [word.lower() for word in _WORDS.findall(key)]
    while words and words[-1].isdigit():  # "api_key_2"
        words.pop()
    if len(words) >= 2 and words[-1] == "token" and words[-2] in _NOT_SECRET_TOKENS:
        return False
    tail = ""
    for word in reversed(words):
        tail = word + tail
        if tail in _SUFFIXES:
            return True
    return False


def redact_secrets(value: Any) -> Any:
    """Replace values under secret-looking keys, and secrets in strings, with `REDACTED`.

    The input is never mutated: containers are copied only where something changed, so a value
    without secrets is returned as is.

    Args:
        value: A JSON-safe value, as returned by `to_json_safe` (dicts, lists, scalars).

    Returns:
        The redacted value.
    """
    kind = type(value)
    if kind is str:
        return redact_text(value)
    if (kind is not dict and kind is not list) or not value:
        return value  # a scalar, or an empty container (a call without arguments)
    if not _extra_values:
        # Most content holds no secret: gather its strings, and if no key is secret and no
        # pattern matches the strings joined by newlines, nothing changes. No built-in
        # pattern matches across a newline, so a match there is a match in one string.
        texts: list[str] = []
        if _gather(value, texts, 0) and _texts_clean(texts):
            return value
    return _redact_dict(value, 0) if kind is dict else _redact_list(value, 0)


def plain_messages_clean(texts: list[str]) -> bool:
    """True if ``{"role": ..., "content": ...}`` messages of ``texts`` need no redaction.

    The strings are checked once, joined (as `redact_secrets` does); neither key is secret
    under the built-in rules. With patterns the user added, False: take `redact_secrets`.
    """
    if _extra_keys or _extra_values:
        return False
    return _texts_clean(texts)


def redact_text(text: str) -> str:
    """Replace the secrets `SECRET_VALUE_PATTERNS` (and added patterns) find in ``text``.

    Args:
        text: Free text, such as an error message or a chat message.

    Returns:
        ``text`` itself when it holds no secret, else a copy with each secret replaced.
    """
    out = text
    for gate, regex in _scanners or _compile_scanners():
        if gate in text and regex.search(out) is not None:
            out = regex.sub(_replace_secret, out)
    for regex in _extra_values:
        out = regex.sub(_replace_nonempty, out)
    return text if out == text else out


#: Hashes of the strings the built-in patterns found no secret in, so that text sent again
#: (a chat history, resent with every call) is scanned once. Only the hash is kept, no
#: content; Python's string hash is a keyed SipHash, so a string with a secret passing for a
#: remembered one is a 64-bit collision. Cleared when the patterns change.
_clean: set[int] = set()
_MAX_CLEAN = 4096


def _texts_clean(texts: list[str]) -> bool:
    """True if no built-in value pattern matches in any of ``texts``.

    The strings not remembered as clean are checked once, joined by newlines (no built-in
    pattern matches across one, so a match there is a match in one string).
    """
    if not texts:
        return True
    clean = _clean
    if clean.issuperset(map(hash, texts)):  # all seen before: the usual chat history
        return True
    fresh = [text for text in texts if hash(text) not in clean]
    if _has_secret(fresh[0] if len(fresh) == 1 else "\n".join(fresh)):
        return False
    if len(clean) > _MAX_CLEAN:
        clean.clear()
    clean.update(map(hash, fresh))
    return True


def _has_secret(text: str) -> bool:
    """True if a built-in value pattern matches somewhere in ``text``."""
    for gate, regex in _scanners or _compile_scanners():
        if gate in text and regex.search(text) is not None:
            return True
    return False


def _gather(value: Any, texts: list[str], depth: int) -> bool:
    """Append the strings in ``value`` to ``texts``; False if a key (or a pair) is secret.

    Also False where `_redact_dict` and `_redact_list` would not descend (too deep), so the
    caller then takes their path.
    """
    if depth >= _MAX_DEPTH:
        return False
    items: Iterable[Any] = value
    if type(value) is dict:
        for key, item in value.items():
            secret = _decisions.get(key) if type(key) is str else False
            if secret is None:
                secret = is_secret_key(key)
            if secret and not _not_a_secret(key, item, value):
                return False
        items = value.values()
    elif len(value) == 2 and type(value[0]) is str and len(value[0]) <= 64:
        if is_secret_key(value[0]):
            return False
    elif len(value) > _LONG and _NUMBERS.issuperset(map(type, value[:-1])):
        items = value[-1:]  # an embedding or a series (see _redact_list)
    for item in items:
        kind = type(item)
        if kind is str:
            texts.append(item)
        elif (kind is dict or kind is list) and not _gather(item, texts, depth + 1):
            return False
    return True


def _not_a_secret(key: str, item: Any, mapping: dict[Any, Any]) -> bool:
    """Tell whether a value under a secret-looking key is not a secret after all.

    A logprob's ``token`` (the text of a token, beside its ``logprob``), or a number under a
    ``*_token`` key (``cached_token: 4``).
    """
    if key == "token" and "logprob" in mapping:
        return True
    if type(item) not in _NUMBERS:
        return False
    words = _WORDS.findall(key)
    return bool(words) and words[-1].lower() == "token"


def _replace_secret(match: re.Match[str]) -> str:
    """Replace the secret (group 1) of a match, keeping the rest of it."""
    start, end = match.span(1)
    offset = match.start()
    whole = match.group(0)
    return whole[: start - offset] + REDACTED + whole[end - offset :]


def _redact_dict(value: dict[Any, Any], depth: int) -> dict[Any, Any]:
    """Redact a dict; stop descending past `_MAX_DEPTH` so cyclic input cannot recurse forever."""
    changed: dict[Any, Any] | None = None
    for key, item in value.items():
        secret = _decisions.get(key) if type(key) is str else False
        if secret is None:
            secret = is_secret_key(key)
        if secret and not _not_a_secret(key, item, value):
            new: Any = REDACTED
        elif type(item) is str:
            new = redact_text(item)
        elif type(item) is dict and depth < _MAX_DEPTH:
            new = _redact_dict(item, depth + 1)
        elif type(item) is list and depth < _MAX_DEPTH:
            new = _redact_list(item, depth + 1)
        else:
            continue
        if new is not item:
            if changed is None:
                changed = dict(value)
            changed[key] = new
    return value if changed is None else changed


def _redact_list(value: list[Any], depth: int) -> list[Any]:
    """Redact the strings, dicts and lists inside a list; a ``[name, value]`` pair is a header."""
    if (
        len(value) == 2
        and type(value[0]) is str
        and len(value[0]) <= 64
        and is_secret_key(value[0])
    ):
        return value if value[1] == REDACTED else [value[0], REDACTED]
    if len(value) > _LONG and _NUMBERS.issuperset(map(type, value[:-1])):
        # An embedding or a series, maybe cut by the snapshot (its last item is then the
        # marker): nothing to scan, and no loop over it.
        last = value[-1]
        if type(last) is not str:
            return value if type(last) in _NUMBERS else [*value[:-1], *_redact_list([last], depth)]
        new_last = redact_text(last)
        return value if new_last is last else [*value[:-1], new_last]
    copy: list[Any] | None = None
    for index, item in enumerate(value):
        if type(item) is str:
            new: Any = redact_text(item)
        elif type(item) is dict and depth < _MAX_DEPTH:
            new = _redact_dict(item, depth + 1)
        elif type(item) is list and depth < _MAX_DEPTH:
            new = _redact_list(item, depth + 1)
        else:
            continue
        if new is not item:
            if copy is None:
                copy = list(value)
            copy[index] = new
    return value if copy is None else copy


# -- patterns -----------------------------------------------------------------------------------

#: The user's key and value patterns, each compiled with its own flags.
_extra_keys: tuple[re.Pattern[str], ...] = ()
_extra_values: tuple[re.Pattern[str], ...] = ()
#: The built-in value patterns, compiled on first use (not at import: ``import hogtrace`` is
#: kept cheap, and most processes redact nothing before their first event is built).
_scanners: tuple[tuple[str, re.Pattern[str]], ...] = ()


def _compile_scanners() -> tuple[tuple[str, re.Pattern[str]], ...]:
    global _scanners
    _scanners = tuple((gate, re.compile(regex)) for _, regex, gate in SECRET_VALUE_PATTERNS)
    return _scanners


def add_secret_patterns(
    key_patterns: Iterable[str | re.Pattern[str]] = (),
    value_patterns: Iterable[str | re.Pattern[str]] = (),
) -> None:
    """Redact more: values under keys matching ``key_patterns``, text matching ``value_patterns``.

    Args:
        key_patterns: Regexes searched (case-insensitively) in each mapping key, such as
            ``r"^internal_ref$"``; a match makes the key's value `REDACTED`.
        value_patterns: Regexes whose every match in a string is replaced by `REDACTED`
            (use lookarounds to keep context, as ``r"(?<=acct=)[0-9]+"``). With any of these, every
            string is scanned, so keep them cheap.

    Raises:
        re.error: A pattern does not compile; nothing is added then.
        ValueError: A pattern matches the empty string (it would put `REDACTED` between every
            two characters); nothing is added then.
        TypeError: A pattern is neither a string nor a compiled pattern.
    """
    keys = compile_patterns(key_patterns, re.IGNORECASE)
    values = compile_patterns(value_patterns)
    _install(_extra_keys + keys, _extra_values + values)


def compile_patterns(
    patterns: Iterable[str | re.Pattern[str]], flags: int = 0
) -> tuple[re.Pattern[str], ...]:
    """Each pattern compiled on its own, its own flags kept (``flags`` added).

    Raises:
        re.error: A pattern does not compile.
        ValueError: A pattern matches the empty string.
        TypeError: A pattern is neither a string nor a compiled pattern.
    """
    compiled: list[re.Pattern[str]] = []
    for pattern in patterns:
        if isinstance(pattern, re.Pattern) and isinstance(pattern.pattern, str):
            regex = re.compile(pattern.pattern, pattern.flags | flags)
        elif isinstance(pattern, str):
            regex = re.compile(pattern, flags)
        else:
            raise TypeError(f"a secret pattern must be a string or a compiled pattern: {pattern!r}")
        if regex.search("") is not None:
            raise ValueError(f"the secret pattern {regex.pattern!r} matches the empty string")
        compiled.append(regex)
    return tuple(compiled)


def set_secret_patterns(value_patterns: Iterable[re.Pattern[str]]) -> None:
    """Make ``value_patterns`` (`compile_patterns`) the user's value patterns, in one step."""
    _install(_extra_keys, tuple(value_patterns))


def reset_secret_patterns() -> None:
    """Forget the patterns `add_secret_patterns` added, keeping the built-in ones."""
    _install((), ())


def _replace_nonempty(match: re.Match[str]) -> str:
    """`REDACTED` for a match with text; an empty match (a bare lookahead) replaces nothing."""
    return REDACTED if match.end() > match.start() else ""


def _install(keys: tuple[re.Pattern[str], ...], values: tuple[re.Pattern[str], ...]) -> None:
    """Install ``keys`` and ``values`` besides the built-in patterns; clear cached decisions."""
    global _extra_keys, _extra_values
    _extra_keys, _extra_values = keys, values
    _decisions.clear()
    _clean.clear()
