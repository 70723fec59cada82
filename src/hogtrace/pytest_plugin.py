"""The ``hogtrace_events`` pytest fixture, for ``-p hogtrace.pytest_plugin`` and old imports.

The plugin itself is the top-level ``hogtrace_pytest`` module, registered through the
``pytest11`` entry point: importing it does not import hogtrace (nor posthog), so it costs
nothing to a pytest run that does not use hogtrace.
"""

from __future__ import annotations

from hogtrace_pytest import hogtrace_events

__all__ = ["hogtrace_events"]
