"""Every example in ``examples/`` runs, as a user would run it, and prints a sensible tree.

Each script runs in a subprocess with a clean environment (no PostHog key: examples must work
offline) and must exit 0, log no hogtrace warning or internal error, and print the trace trees
listed here (latencies removed). ``examples/test_example.py`` is a pytest module: it runs through
pytest. A new example is picked up automatically and gets the generic checks; add its trees
below.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

#: Runs subprocesses (docs, examples, pytester): left out of the fast loop, `-m "not slow"`.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
SCRIPTS = sorted(p.name for p in EXAMPLES.glob("*.py") if not p.name.startswith("test_"))
PYTEST_MODULES = sorted(p.name for p in EXAMPLES.glob("test_*.py"))
TIMEOUT = 60

#: Trees each script must print (the console tree, with the `` 1.2 ms`` latencies removed).
TREES: dict[str, list[str]] = {
    "quickstart.py": [
        """\
answer [trace, session conv-1]
├── retrieve [span]
├── chat [generation, gpt-4o-mini, tokens in=24 out=10]
└── postprocess [span]
    └── tool:word_count [span]""",
    ],
    "chat_loop.py": [
        """\
turn [trace, session chat-42]
├── chat [generation, gpt-4o-mini, tokens in=14 out=18]
├── title [generation, claude-haiku-4-5, tokens in=32 out=3]
└── metric answer_words=18""",
    ],
    "distributed.py": [
        """\
ask [trace, session conv-42]
├── rewrite [span]
└── http:POST /answer [span]
    └── service:answer [span]
        ├── lookup [span]
        └── chat [generation, gpt-4o-mini, tokens in=31 out=12]""",
    ],
    "rag_pipeline.py": [
        """\
answer [trace, session docs-chat-7]
├── retrieve [span]
│   └── embed [embedding, text-embedding-3-small, tokens in=6]
├── rerank [span]
├── metric context_match=0.33
└── generate [generation, gpt-4o-mini, tokens in=31 out=14]""",
    ],
    "agent_loop.py": [
        """\
agent-turn [trace, session travel-chat-1]
├── llm [generation, gpt-4o-mini, tokens in=20 out=25]
├── tool:get_weather [span]
├── tool:get_weather [span]
├── llm [generation, gpt-4o-mini, tokens in=67 out=20]
└── metric steps=2""",
        """\
agent-turn [trace, session travel-chat-1]
├── llm [generation, gpt-4o-mini, tokens in=143 out=17]
├── tool:calculator [span] ✗ ZeroDivisionError: float division by zero
├── llm [generation, gpt-4o-mini, tokens in=172 out=15]
└── metric steps=2""",
    ],
    "streaming_chat.py": [
        """\
chat-turn [trace, session stream-chat-1]
└── chat [generation, gpt-4o-mini, tokens in=7 out=11]""",
        """\
chat-turn-interrupted [trace, session stream-chat-1]
└── chat [generation, gpt-4o-mini]""",
        """\
chat-turn-async [trace, session stream-chat-1]
└── chat [generation, gpt-4o-mini, tokens in=31 out=11]""",
    ],
    "http_service.py": [
        """\
POST /chat [trace, session conv-A]
├── load_history [span]
└── chat [generation, gpt-4o-mini, tokens in=17 out=7]""",
        "POST /chat [trace, session conv-B] ✗ ValueError: empty message",
    ],
    "otel_bridge.py": [
        """\
answer [trace, session weather-chat-1]
└── invoke_agent weather-bot [span, agent]
    ├── chat gpt-4o-mini [generation, gpt-4o-mini, tokens in=48 out=15]
    ├── execute_tool get_weather [span, tool]
    ├── execute_tool lookup_stock [span, tool] ✗ LookupError: no ACME
    └── chat gpt-4o-mini [generation, gpt-4o-mini, tokens in=61 out=9]""",
        "chat gpt-4o-mini [generation, gpt-4o-mini, tokens in=48 out=15]",
    ],
    "celery_app.py": [
        """\
POST /conversations/{id}/close [trace, session conv-1]
└── enqueue [span]
    ├── summarize_conversation [span]
    │   └── summarize_llm [generation, gpt-4o-mini, tokens in=8 out=4]
    ├── index_document [span] ✗ TimeoutError: vector store timed out
    │   └── embed [span] ✗ TimeoutError: vector store timed out
    └── index_document [span]
        └── embed [span]""",
        "nightly_cleanup [trace]\n└── delete-expired [span]",
    ],
    "asgi_service.py": [
        """\
├── load_history [span]
├── llm [generation, gpt-4o-mini, tokens in=12 out=3]
└── save_turn [span]""",
        "frontend: send message [trace, session chat-8]\n├── render [span]",
    ],
}

_LATENCY = re.compile(r" \d+\.\d ms(?=$| ✗)", re.MULTILINE)
_ROOT_LINE = re.compile(r"^\S.* \[(trace|span|generation|embedding)\b", re.MULTILINE)
_CHILD_LINE = re.compile(r"^[│ ]*[├└]── \S", re.MULTILINE)
_HOGTRACE_LOG = re.compile(r"^(WARNING:)?hogtrace\b", re.MULTILINE)


def _offline_env() -> dict[str, str]:
    """The caller's environment without anything that would send events or change output."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("POSTHOG_", "HOGTRACE_", "PYTEST_")) and k != "PYTHONWARNINGS"
    }
    env["PYTHONIOENCODING"] = "utf-8"  # the trees are drawn with box characters
    return env


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env=_offline_env(),
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=TIMEOUT,
        check=False,
    )


def _describe(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"


class TestExampleScripts:
    @pytest.mark.parametrize("name", SCRIPTS)
    def test_runs_offline_and_prints_its_trees(self, name: str) -> None:
        """The script exits 0, logs no warning or internal error, and prints its trace trees."""
        result = _run(f"examples/{name}")
        output = _LATENCY.sub("", result.stdout + "\n" + result.stderr)

        assert 0 == result.returncode, _describe(result)
        assert "Traceback" not in output, _describe(result)
        # hogtrace logs through `logging`; unconfigured, a warning is printed as its message.
        assert not _HOGTRACE_LOG.search(output), _describe(result)
        assert _ROOT_LINE.search(output), "no trace tree printed\n" + _describe(result)
        assert _CHILD_LINE.search(output), "no child in any tree\n" + _describe(result)
        for tree in TREES.get(name, []):
            assert tree in output, f"expected tree:\n{tree}\n\n{_describe(result)}"

    def test_every_script_has_expected_trees(self) -> None:
        """Every example script has its trees listed here, and every listed script exists."""
        assert sorted(SCRIPTS) == sorted(TREES)

    def test_the_issue_examples_exist(self) -> None:
        """The RAG, agent, streaming and HTTP service examples are all present."""
        wanted = {"rag_pipeline.py", "agent_loop.py", "streaming_chat.py", "http_service.py"}
        assert wanted == wanted & set(SCRIPTS)


class TestExamplePytestModules:
    @pytest.mark.parametrize("name", PYTEST_MODULES)
    def test_passes_under_pytest(self, name: str) -> None:
        """The example test module passes when run with pytest, as the docs tell users to."""
        result = _run("-m", "pytest", "-q", "-p", "no:cacheprovider", f"examples/{name}")

        assert 0 == result.returncode, _describe(result)
        assert re.search(r"\b\d+ passed\b", result.stdout), _describe(result)
        assert not re.search(r"\b(failed|error|skipped|xfailed)\b", result.stdout), _describe(
            result
        )

    def test_there_is_one(self) -> None:
        """``examples/test_example.py`` is found (so the parametrized test is not empty)."""
        assert ["test_example.py"] == PYTEST_MODULES
