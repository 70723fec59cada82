"""Built-in, key-based redaction of secrets in captured content.

A value is redacted when its key looks like a secret. Keys are compared case-insensitively and
ignoring ``-`` and ``_``, so ``X-Api-Key``, ``x_api_key`` and ``xApiKey`` are the same key. A key
is secret when it is one of `_EXACT` (``token``, ``pwd``, ...), or when its last words spell one
of `_SUFFIXES` (``openai_api_key``, ``db_password``, ``googleIdToken``). Counts and ids such as
``input_tokens``, ``max_tokens``, ``session_id`` or ``eos_token`` are never secret.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["REDACTED", "is_secret_key", "redact_secrets"]

REDACTED = "[REDACTED]"

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
    }
)
# Names that are secret only on their own: "eos_token" or "old_pwd" are not.
_EXACT = _SUFFIXES | {"token", "pwd", "bearer", "secrets", "xapikey", "clientsecret"}

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


def _decide(key: str) -> bool:
    """Apply the exact-name and last-words rules to ``key``."""
    if key.lower().replace("-", "").replace("_", "") in _EXACT:
        return True
    words = [word.lower() for word in _WORDS.findall(key)]
    while words and words[-1].isdigit():  # "api_key_2"
        words.pop()
    tail = ""
    for word in reversed(words):
        tail = word + tail
        if tail in _SUFFIXES:
            return True
    return False


def redact_secrets(value: Any) -> Any:
    """Replace every value under a secret-looking key with `REDACTED`.

    The input is never mutated: containers are copied only where something changed, so a value
    without secrets is returned as is.

    Args:
        value: A JSON-safe value, as returned by `to_json_safe` (dicts, lists, scalars).

    Returns:
        The redacted value.
    """
    kind = type(value)
    if kind is dict:
        return _redact_dict(value, 0)
    if kind is list:
        return _redact_list(value, 0)
    return value


def _redact_dict(value: dict[Any, Any], depth: int) -> dict[Any, Any]:
    """Redact a dict; stop descending past `_MAX_DEPTH` so cyclic input cannot recurse forever."""
    changed: dict[Any, Any] | None = None
    for key, item in value.items():
        secret = _decisions.get(key) if type(key) is str else False
        if secret is None:
            secret = is_secret_key(key)
        if secret:
            new: Any = REDACTED
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
    """Redact the dicts and lists inside a list."""
    copy: list[Any] | None = None
    for index, item in enumerate(value):
        if type(item) is dict and depth < _MAX_DEPTH:
            new: Any = _redact_dict(item, depth + 1)
        elif type(item) is list and depth < _MAX_DEPTH:
            new = _redact_list(item, depth + 1)
        else:
            continue
        if new is not item:
            if copy is None:
                copy = list(value)
            copy[index] = new
    return value if copy is None else copy
