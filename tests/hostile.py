"""Objects that fight back, shared by the serialization and content tests."""

from __future__ import annotations

from typing import Any


class FakeArray:
    """Looks like a numpy array: it has ``tolist()``."""

    def tolist(self) -> list[list[int]]:
        return [[1, 2], [3, 4]]


class Hostile:
    """Every dunder a serializer or an equality check might touch raises."""

    def __repr__(self) -> str:
        raise RuntimeError("repr")

    def __str__(self) -> str:
        raise RuntimeError("str")

    def __eq__(self, other: object) -> bool:
        raise RuntimeError("eq")

    def __hash__(self) -> int:
        raise RuntimeError("hash")

    def __bool__(self) -> bool:
        raise RuntimeError("bool")

    def __len__(self) -> int:
        raise RuntimeError("len")

    def __iter__(self) -> Any:
        raise RuntimeError("iter")

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(name)


class HostileList(list[int]):
    """A list whose iteration, length and repr raise."""

    def __iter__(self) -> Any:
        raise RuntimeError("iter")

    def __len__(self) -> int:
        raise RuntimeError("len")

    def __repr__(self) -> str:
        raise RuntimeError("repr")
