"""The public surface: ``hogtrace.__all__`` and every name SPEC §1 promises."""

from __future__ import annotations

import importlib.metadata
import inspect
import pathlib
import types

import pytest

import hogtrace
import hogtrace.testing

SPEC_FUNCTIONS = {
    "session": ["id", "distinct_id", "properties"],
    "trace": ["name", "id", "distinct_id", "properties", "capture_input", "capture_output"],
    "span": ["name", "properties", "capture_input", "capture_output"],
    "generation": [
        "name",
        "model",
        "provider",
        "base_url",
        "model_parameters",
        "properties",
        "capture_input",
        "capture_output",
    ],
    "embedding": ["name", "model", "provider", "properties", "capture_input", "capture_output"],
    "configure": [
        "client",
        "api_key",
        "host",
        "distinct_id",
        "privacy_mode",
        "redact",
        "max_event_bytes",
        "sample_rate",
        "enabled",
        "console",
        "properties",
    ],
    "reset": [],
    "flush": ["timeout"],
    "shutdown": [],
    "stats": [],
    "current": [],
    "propagate": ["fn"],
    "inject": ["headers"],
    "continue_trace": ["headers"],
    "posthog_properties": [],
    "metric": ["name", "value", "trace_id"],
    "feedback": ["text", "trace_id"],
}

SCOPE_MEMBERS = [
    "id",
    "trace_id",
    "parent_id",
    "session_id",
    "name",
    "set_input",
    "set_output",
    "set_properties",
    "set_error",
    "latency",
    "metrics",
]
GENERATION_MEMBERS = ["set_model", "set_usage", "set_cost"]


def public_names() -> list[str]:
    """Non-underscore attributes of ``hogtrace`` that are not submodules."""
    return sorted(
        name
        for name, value in vars(hogtrace).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    )


class TestAll:
    def test_all_is_exactly_the_public_names(self) -> None:
        """``__all__`` lists every public name and nothing else (besides ``__version__``)."""
        assert public_names() == sorted(n for n in hogtrace.__all__ if n != "__version__")

    def test_all_has_no_duplicates(self) -> None:
        """``__all__`` names each export once."""
        assert len(hogtrace.__all__) == len(set(hogtrace.__all__))

    def test_all_names_resolve(self) -> None:
        """Every name in ``__all__`` is an attribute of the package."""
        missing = [name for name in hogtrace.__all__ if not hasattr(hogtrace, name)]
        expected = []
        assert expected == missing

    def test_star_import(self) -> None:
        """``from hogtrace import *`` gives exactly ``__all__``."""
        namespace: dict[str, object] = {}
        exec("from hogtrace import *", namespace)
        assert sorted(hogtrace.__all__) == sorted(k for k in namespace if k != "__builtins__")

    def test_version(self) -> None:
        """``__version__`` is a non-empty string matching the installed distribution."""
        assert isinstance(hogtrace.__version__, str)
        assert importlib.metadata.version("hogtrace") == hogtrace.__version__


class TestSpecNames:
    @pytest.mark.parametrize("name", sorted(SPEC_FUNCTIONS))
    def test_spec_function_exists(self, name: str) -> None:
        """Every SPEC §1 function is exported, callable, and takes the documented parameters."""
        assert name in hogtrace.__all__
        fn = getattr(hogtrace, name)
        assert callable(fn)
        params = inspect.signature(fn).parameters
        expected = []
        assert expected == [p for p in SPEC_FUNCTIONS[name] if p not in params]

    def test_testing_module(self) -> None:
        """``hogtrace.testing.capture_events`` exists and is a context manager factory."""
        with hogtrace.testing.capture_events() as events:
            expected = []
            assert expected == list(events)

    def test_pytest_plugin_registered(self) -> None:
        """The ``hogtrace_events`` fixture is registered through the ``pytest11`` entry point."""
        entry_points = importlib.metadata.entry_points(group="pytest11")
        assert "hogtrace_pytest" in {e.value for e in entry_points if e.name == "hogtrace"}
        from hogtrace import pytest_plugin

        assert hasattr(pytest_plugin, "hogtrace_events")

    @pytest.mark.parametrize("member", SCOPE_MEMBERS)
    def test_scope_members(self, member: str) -> None:
        """An open scope has every attribute SPEC §1 lists."""
        with hogtrace.testing.capture_events(), hogtrace.span("s") as scope:
            assert isinstance(scope, hogtrace.Scope)
            assert hasattr(scope, member)

    @pytest.mark.parametrize("kind", ["generation", "embedding"])
    def test_generation_members(self, kind: str) -> None:
        """Generations and embeddings also have ``set_model``, ``set_usage`` and ``set_cost``."""
        with hogtrace.testing.capture_events(), getattr(hogtrace, kind)("g") as scope:
            assert isinstance(scope, hogtrace.GenerationScope)
            for member in GENERATION_MEMBERS:
                assert callable(getattr(scope, member))

    def test_session_scope_type(self) -> None:
        """A session block gives a ``SessionScope``, which ``current()`` returns."""
        with hogtrace.session("s") as scope:
            assert isinstance(scope, hogtrace.SessionScope)
            assert scope is hogtrace.current()

    def test_embedding_scope_type(self) -> None:
        """An embedding block gives an ``EmbeddingScope``."""
        with hogtrace.testing.capture_events(), hogtrace.embedding("e") as scope:
            assert isinstance(scope, hogtrace.EmbeddingScope)

    def test_metrics_type(self) -> None:
        """A closed scope's ``metrics`` is a ``Metrics``."""
        with hogtrace.testing.capture_events(), hogtrace.span("s") as scope:
            pass
        assert isinstance(scope.metrics, hogtrace.Metrics)

    def test_py_typed(self) -> None:
        """The package ships a ``py.typed`` marker."""
        assert (pathlib.Path(hogtrace.__file__).parent / "py.typed").is_file()


@pytest.mark.slow
class TestLazySubmodules:
    def test_testing_is_an_attribute_imported_on_first_use(self) -> None:
        """``hogtrace.testing`` works after ``import hogtrace`` alone, imported only when used."""
        import subprocess
        import sys

        script = (
            "import sys, hogtrace\n"
            "before = 'hogtrace.testing' in sys.modules\n"
            "with hogtrace.testing.capture_events() as events:\n"
            "    hogtrace.span('s').__enter__().set_output(1)\n"
            "print(before, 'hogtrace.testing' in sys.modules)\n"
        )
        out = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
        )
        assert "False True" == out.stdout.strip()

    def test_unknown_attribute_still_raises(self) -> None:
        """A name hogtrace does not have raises ``AttributeError``."""
        with pytest.raises(AttributeError, match="nope"):
            hogtrace.nope  # type: ignore[attr-defined]  # noqa: B018
