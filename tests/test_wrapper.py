"""Decorated callables pickle and copy by reference, like undecorated ones (process pools)."""

from __future__ import annotations

import concurrent.futures
import copy
import multiprocessing
import pickle
from typing import Any

import pytest

import hogtrace
from hogtrace.testing import CapturedEvents


@hogtrace.span
def double(x: int) -> int:
    return 2 * x


@hogtrace.generation(model="m")
def reply(messages: list[dict[str, str]]) -> str:
    return "ok"


class Model:
    @hogtrace.span
    def square(self, x: int) -> int:
        return x * x

    @classmethod
    @hogtrace.span
    def make(cls, size: int) -> int:
        return size + 1

    @staticmethod
    @hogtrace.span
    def add(a: int, b: int) -> int:
        return a + b


@hogtrace.span
class Job:
    def __init__(self, n: int) -> None:
        self.n = n


def _square_in_worker(x: int) -> int:
    return Model().square(x)


class TestPickle:
    @pytest.mark.parametrize(
        "target",
        [double, reply, Model.square, Model.make, Model.add, Job],
        ids=["function", "generation", "method", "classmethod", "staticmethod", "class"],
    )
    def test_round_trip_gives_the_same_object(self, target: Any) -> None:
        """A decorated function, method or class unpickles to itself (by reference)."""
        assert target == pickle.loads(pickle.dumps(target))

    def test_bound_method_pickles_with_its_instance(self) -> None:
        """A decorated method bound to an instance pickles as ``getattr(instance, name)``."""
        restored = pickle.loads(pickle.dumps(Model().square))

        assert 49 == restored(7)

    def test_unpickled_function_still_traces(self, hogtrace_events: CapturedEvents) -> None:
        """What comes back from pickle is the traced function, not the bare one."""
        restored = pickle.loads(pickle.dumps(double))

        assert 8 == restored(4)
        assert [{"x": 4}] == [e.input for e in hogtrace_events]

    def test_local_function_fails_as_undecorated_one_does(self) -> None:
        """A function defined in a function cannot be pickled, decorated or not."""

        @hogtrace.span
        def local() -> None:
            pass

        with pytest.raises((pickle.PicklingError, AttributeError)):
            pickle.dumps(local)


class TestCopy:
    @pytest.mark.parametrize("copier", [copy.copy, copy.deepcopy])
    @pytest.mark.parametrize(
        "target", [double, Model.square, Job], ids=["function", "method", "class"]
    )
    def test_copy_is_the_same_object(self, copier: Any, target: Any) -> None:
        """Copying a decorated callable returns it, as copying a function does."""
        assert target is copier(target)


@pytest.mark.slow
class TestProcessPools:
    @pytest.mark.parametrize("method", ["fork", "spawn"])
    def test_executor_runs_decorated_functions(self, method: str) -> None:
        """``ProcessPoolExecutor.submit`` / ``map`` accept decorated functions and methods."""
        context = multiprocessing.get_context(method)
        with concurrent.futures.ProcessPoolExecutor(2, mp_context=context) as pool:
            doubled = list(pool.map(double, [1, 2, 3]))
            made = pool.submit(Model.make, 4).result(timeout=60)
            squared = pool.submit(_square_in_worker, 5).result(timeout=60)

        assert ([2, 4, 6], 5, 25) == (doubled, made, squared)

    @pytest.mark.parametrize("method", ["fork", "spawn"])
    def test_pool_map(self, method: str) -> None:
        """``multiprocessing.Pool.map`` accepts a decorated function."""
        with multiprocessing.get_context(method).Pool(2) as pool:
            assert [0, 2, 4] == pool.map(double, range(3))
