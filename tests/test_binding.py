from __future__ import annotations

import functools
import math
from typing import Any

import openai
import pytest
import wrapt

from hogtrace._binding import Binder, default_name


class Model:
    def square(self, x: int) -> int:
        return x * x

    @classmethod
    def make(cls, size: int, color: str = "red") -> Model:
        return cls()

    @staticmethod
    def area(width: int, height: int = 2) -> int:
        return width * height


class MyTool:
    def __call__(self, query: str, limit: int = 5) -> str:
        return query


def scale(x: int, factor: int = 2, *, offset: int = 0) -> int:
    return x * factor + offset


def wrapt_bind(fn: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """Call `fn` through a wrapt FunctionWrapper and bind as the decorators do."""
    binder = Binder(fn)
    seen: dict[str, Any] = {}

    def wrapper(wrapped: Any, instance: Any, a: tuple[Any, ...], kw: dict[str, Any]) -> Any:
        seen.update(binder.bind(a, kw, instance is not None))

    wrapt.FunctionWrapper(fn, wrapper)(*args, **kwargs)
    return seen


class TestBinder:
    def test_bound_method(self) -> None:
        """A bound method binds its parameters, never its instance."""
        assert {"x": 8} == wrapt_bind(Model().square, 8)

    def test_classmethod_through_class(self) -> None:
        """A classmethod reached through its class binds from its first real parameter."""
        assert {"size": 3, "color": "red"} == wrapt_bind(Model.make, 3)

    def test_classmethod_through_instance(self) -> None:
        """A classmethod reached through an instance binds the same."""
        assert {"size": 3, "color": "blue"} == wrapt_bind(Model().make, 3, color="blue")

    def test_staticmethod(self) -> None:
        """A staticmethod binds like a plain function."""
        assert {"width": 4, "height": 2} == wrapt_bind(Model.area, 4)

    def test_partial(self) -> None:
        """A partial records what the underlying function receives, frozen arguments included."""
        assert {"x": 3, "factor": 5, "offset": 1} == wrapt_bind(
            functools.partial(scale, factor=5), 3, offset=1
        )

    def test_partial_of_positional_arguments(self) -> None:
        """Frozen positional arguments come before the call's own."""
        assert {"x": 3, "factor": 4, "offset": 0} == wrapt_bind(functools.partial(scale, 3), 4)

    def test_partial_of_bound_method(self) -> None:
        """A partial of a bound method leaves the instance out."""
        assert {"x": 8} == wrapt_bind(functools.partial(Model().square, 8))

    def test_partial_of_unbound_method(self) -> None:
        """A partial freezing ``self`` of a plain method leaves the instance out."""
        assert {"x": 8} == wrapt_bind(functools.partial(Model.square, Model()), 8)

    def test_callable_instance(self) -> None:
        """A callable instance binds its ``__call__`` without ``self``."""
        assert {"query": "q", "limit": 5} == wrapt_bind(MyTool(), "q")

    def test_builtin_with_signature(self) -> None:
        """A builtin with a signature binds by name."""
        assert {"x": 2.0, "y": 3.0} == wrapt_bind(math.pow, 2.0, 3.0)

    def test_builtin_without_signature(self) -> None:
        """A builtin without a signature records args and kwargs."""
        with pytest.raises(ValueError, match="signature"):
            __import__("inspect").signature(getattr)
        assert {"args": [1, "real"]} == Binder(getattr).bind((1, "real"), {}, False)

    def test_openai_sdk_method(self) -> None:
        """An openai client's create binds by name; NOT_GIVEN defaults are left out."""
        client = openai.OpenAI(api_key="x", base_url="http://127.0.0.1:1")
        binder = Binder(client.chat.completions.create)
        messages = [{"role": "user", "content": "hi"}]
        kwargs = {"model": "gpt-4o-mini", "messages": messages, "temperature": 0.1}
        expected = {
            "messages": messages,
            "model": "gpt-4o-mini",
            "temperature": 0.1,
            "extra_headers": None,
            "extra_query": None,
            "extra_body": None,
        }
        assert expected == binder.bind((), kwargs, True)
        assert expected == binder.bind((), kwargs, False)

    def test_plain_function_method_descriptor_bound(self) -> None:
        """A function decorated in a class body drops ``self`` when wrapt bound it."""
        assert {"x": 8} == Binder(Model.square).bind((8,), {}, True)

    def test_plain_function_method_called_through_class(self) -> None:
        """Called through the class, the instance passed first is dropped too."""
        assert {"x": 8} == Binder(Model.square).bind((Model(), 8), {}, False)

    def test_wrong_call_records_what_was_passed(self) -> None:
        """A call the signature rejects records its arguments as given."""
        assert {"args": [1, 2, 3, 4], "kwargs": {}} == Binder(scale).bind((1, 2, 3, 4), {}, False)


def outer() -> Any:
    def step() -> None:
        pass

    return step


class TestDefaultName:
    def test_locals_are_removed(self) -> None:
        """``<locals>.`` segments are left out of a nested function's name."""
        assert "outer.step" == default_name(outer())

    def test_function(self) -> None:
        """A module-level function is named by its qualname."""
        assert "scale" == default_name(scale)

    def test_bound_method(self) -> None:
        """A bound method is named after its function's qualname."""
        assert "Model.square" == default_name(Model().square)

    def test_classmethod(self) -> None:
        """A classmethod, bound or as the descriptor object, is named after its function."""
        assert ("Model.make", "Model.make") == (
            default_name(Model.make),
            default_name(Model.__dict__["make"]),
        )

    def test_callable_instance(self) -> None:
        """A callable instance is named after its class."""
        assert "MyTool" == default_name(MyTool())

    def test_partial(self) -> None:
        """A partial is named after its underlying function."""
        assert "Model.square" == default_name(functools.partial(functools.partial(Model().square)))

    def test_builtin(self) -> None:
        """A builtin is named by its qualname."""
        assert "pow" == default_name(math.pow)
