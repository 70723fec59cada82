"""The ``hogtrace_events`` pytest fixture, for ``-p hogtrace.pytest_plugin`` and old imports.

The plugin itself is the top-level ``hogtrace_pytest`` module, registered through the
``pytest11`` entry point: importing it does not import hogtrace (nor posthog), so it costs
nothing to a pytest run that does not use hogtrace. Loaded on its own (``-p
hogtrace.pytest_plugin`` with plugin autoloading off, or ``pytest_plugins``), this module
registers that plugin too, so events are kept back and counted the same way.
"""

from __future__ import annotations

from typing import Any

import hogtrace_pytest
from hogtrace_pytest import hogtrace_events

__all__ = ["hogtrace_events"]


def pytest_addhooks(pluginmanager: Any) -> None:
    """Register ``hogtrace_pytest`` unless the entry point did (or ``-p no:hogtrace`` blocks it)."""
    if not pluginmanager.is_registered(hogtrace_pytest) and not pluginmanager.is_blocked(
        "hogtrace"
    ):
        pluginmanager.register(hogtrace_pytest, "hogtrace")
