"""The sampling decision, made in one place.

Deterministic from an id, so the same session (or trace) is kept or dropped in every process
that sees it: a conversation is kept whole.
"""

from __future__ import annotations

import hashlib

__all__ = ["sampled"]


def sampled(key: str, rate: float) -> bool:
    """Keep (True) or drop the session or trace ``key`` at ``rate`` (0.0 to 1.0)."""
    if rate >= 1.0:
        return True
    if rate <= 0.0:
        return False
    digest = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big") < rate * 2**64
