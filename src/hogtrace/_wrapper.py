"""The proxy a decorated callable becomes: a wrapt ``FunctionWrapper`` that pickles and copies.

wrapt's proxies refuse ``pickle`` and ``copy`` (they cannot know how to rebuild what they
wrap), so a decorated function could not be sent to a process pool. A decorated function,
method or class is a module attribute like the undecorated one, so it pickles by reference (its
module and qualified name), exactly as the undecorated one does, and copying gives it back
unchanged, as copying a function does.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import wrapt

if TYPE_CHECKING:  # wrapt 2's proxies are generic; wrapt 1's (also supported) are not
    _BoundFunctionWrapper = wrapt.BoundFunctionWrapper[..., Any]
    _FunctionWrapper = wrapt.FunctionWrapper[..., Any]
else:
    _BoundFunctionWrapper = wrapt.BoundFunctionWrapper
    _FunctionWrapper = wrapt.FunctionWrapper

__all__ = ["TracedFunction", "is_traced"]


def _by_reference(obj: Any) -> Any:
    """What ``__reduce_ex__`` returns to pickle ``obj`` as ``module.qualname``."""
    qualname: str = obj.__qualname__
    owner_path, _, name = qualname.rpartition(".")
    if not owner_path:
        return qualname  # a module-level name: pickle looks it up in obj.__module__
    owner: Any = sys.modules[obj.__module__]
    for part in owner_path.split("."):
        owner = getattr(owner, part)  # '<locals>' fails here, as for an undecorated function
    return (getattr, (owner, name))


class BoundTracedFunction(_BoundFunctionWrapper):
    """A decorated method bound to its instance or class (``obj.method``, ``Class.method``)."""

    def __reduce_ex__(self, protocol: Any) -> Any:
        owner = getattr(self.__wrapped__, "__self__", None)
        if owner is None:  # reached through the class: the plain function
            return _by_reference(self)
        return (getattr, (owner, self.__name__))

    def __copy__(self) -> Any:
        return self

    def __deepcopy__(self, memo: Any) -> Any:
        return self


class TracedFunction(_FunctionWrapper):
    """A hogtrace-decorated callable."""

    __bound_function_wrapper__ = BoundTracedFunction

    def __reduce_ex__(self, protocol: Any) -> Any:
        return _by_reference(self)

    def __copy__(self) -> Any:
        return self

    def __deepcopy__(self, memo: Any) -> Any:
        return self


def is_traced(func: Any) -> bool:
    """Whether ``func`` is already a hogtrace-decorated callable (decorators stacked)."""
    # type(), not isinstance(): a proxy reports the wrapped object's class.
    return type(func) in (TracedFunction, BoundTracedFunction)
