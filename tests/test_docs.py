"""The README and ``docs/*.md`` stay true: their Python blocks run, their links resolve.

Rules for writing docs (so this test can check them):

- Every fenced ``python`` block runs, in the order of the page, all blocks of one page in one
  module (a later block may use what an earlier one defined). A block that cannot run offline
  (a ``phc_...`` key, a real LLM, a framework that is not installed) is preceded by a
  ``<!-- skip-test: why -->`` comment, invisible on GitHub.
- Blocks run offline: no PostHog key in the environment, nothing sent. Use
  ``hogtrace.testing.capture_events()`` and ``assert`` to show (and check) what is emitted.
- ``test_*`` functions defined in a page's blocks are run by pytest, in a subprocess, from a
  module made of that page's blocks, exactly as a user who copies them into a test file would.
- Relative links (and ``#anchors``) point to files and headings that exist.
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import os
import re
import subprocess
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import hogtrace
import hogtrace.testing

#: Runs subprocesses (docs, examples, pytester): left out of the fast loop, `-m "not slow"`.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SKIP = re.compile(r"<!--\s*skip-test:\s*\S.*?-->")
FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>```+|~~~+)\s*(?P<info>[^\n`]*)$")


@dataclasses.dataclass(frozen=True)
class Block:
    """One fenced code block of a page."""

    page: Path
    line: int  # 1-based line of the first code line
    language: str
    code: str
    skipped: bool

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def blocks(page: Path) -> Iterator[Block]:
    """The fenced code blocks of ``page``, with their language and skip marker."""
    lines = page.read_text(encoding="utf-8").splitlines()
    i = 0
    previous = ""  # the last non-blank line before the current one
    while i < len(lines):
        match = FENCE.match(lines[i])
        if match is None:
            if lines[i].strip():
                previous = lines[i]
            i += 1
            continue
        indent, fence = match["indent"], match["fence"]
        language = match["info"].strip().split(" ")[0].lower()
        body: list[str] = []
        j = i + 1
        while j < len(lines) and not lines[j].strip().startswith(fence):
            line = lines[j]
            body.append(line[len(indent) :] if line.startswith(indent) else line.lstrip())
            j += 1
        yield Block(page, i + 2, language, "\n".join(body) + "\n", bool(SKIP.search(previous)))
        previous = ""
        i = j + 1


def python_blocks(page: Path) -> list[Block]:
    return [b for b in blocks(page) if b.language in ("python", "py")]


def _page_id(page: Path) -> str:
    return str(page.relative_to(ROOT))


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """No PostHog key or console switch from the developer's environment."""
    for name in ("POSTHOG_API_KEY", "POSTHOG_PROJECT_API_KEY", "POSTHOG_HOST", "HOGTRACE_CONSOLE"):
        monkeypatch.delenv(name, raising=False)
    hogtrace.reset()


def _test_functions(block: Block) -> list[str]:
    tree = ast.parse(block.code)
    return [
        node.name
        for node in tree.body
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and node.name.startswith("test_")
    ]


class TestPythonBlocks:
    @pytest.mark.parametrize("page", PAGES, ids=_page_id)
    def test_blocks_run(self, page: Path, offline: None) -> None:
        """Every Python block of the page runs without error, in order, in one module."""
        name = f"docs_{page.stem.lower()}"
        module = types.ModuleType(name)
        module.__file__ = str(page)
        sys.modules[name] = module
        try:
            for block in python_blocks(page):
                if block.skipped:
                    continue
                # Padding keeps the page's line numbers in tracebacks.
                code = compile("\n" * (block.line - 1) + block.code, str(page), "exec")
                exec(code, module.__dict__)
                hogtrace.flush()
        finally:
            del sys.modules[name]
            hogtrace.shutdown()

    @pytest.mark.parametrize(
        "page",
        [p for p in PAGES if any(_test_functions(b) for b in python_blocks(p) if not b.skipped)],
        ids=_page_id,
    )
    def test_tests_pass_under_pytest(self, page: Path, tmp_path: Path) -> None:
        """The ``test_*`` functions on the page pass under pytest, in a fresh project."""
        runnable = [b for b in python_blocks(page) if not b.skipped]
        expected = sum(len(_test_functions(b)) for b in runnable)
        source = "\n\n".join(f"# {b.where}\n{b.code}" for b in runnable)
        module = tmp_path / f"test_doc_{page.stem.lower()}.py"
        module.write_text(source, encoding="utf-8")
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("POSTHOG_", "HOGTRACE_", "PYTEST_"))
        }
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", module.name],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        report = f"{result.stdout}\n{result.stderr}"
        assert 0 == result.returncode, report
        assert f"{expected} passed" in result.stdout, report

    def test_most_blocks_run(self) -> None:
        """Fewer than a third of the blocks are skipped (each skip says why, or it is no skip)."""
        everything = [b for page in PAGES for b in python_blocks(page)]
        skipped = [b for b in everything if b.skipped]
        assert len(skipped) * 3 < len(everything), [b.where for b in skipped]


# -- links ---------------------------------------------------------------------------------------

LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[`*~]|<[^>]+>", "", heading)
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    out: set[str] = set()
    in_code = False
    for line in page.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line):
            in_code = not in_code
            continue
        if in_code or not line.startswith("#"):
            continue
        slug = _slug(line.lstrip("#").strip())
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def _links(page: Path) -> Iterator[str]:
    in_code = False
    for line in page.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line):
            in_code = not in_code
            continue
        if not in_code:
            yield from LINK.findall(line)


class TestLinks:
    @pytest.mark.parametrize("page", PAGES, ids=_page_id)
    def test_relative_links_resolve(self, page: Path) -> None:
        """Every relative link points to an existing file, and every anchor to a heading."""
        broken = []
        for target in _links(page):
            if re.match(r"^[a-z]+:", target):
                continue  # https:, mailto:
            path, _, anchor = target.partition("#")
            file = (page.parent / path).resolve() if path else page
            missing_anchor = (
                file.exists() and anchor and file.suffix == ".md" and anchor not in _anchors(file)
            )
            if not file.exists() or missing_anchor:
                broken.append(target)
        assert [] == broken

    def test_readme_links_every_docs_page(self) -> None:
        """The README links every page of ``docs/``."""
        linked = {t.partition("#")[0] for t in _links(ROOT / "README.md")}
        pages = {f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md")}
        assert set() == pages - linked


# -- what the docs must cover ------------------------------------------------------------------


class TestCoverage:
    def test_readme_keeps_the_two_commands(self) -> None:
        """The demo and test commands CI and reviewers run are in the README, verbatim."""
        readme = (ROOT / "README.md").read_text(encoding="utf-8")
        demo = (
            "python3 -m venv .venv && .venv/bin/pip install -q -e . &&"
            " .venv/bin/python examples/quickstart.py"
        )
        tests = "python3 -m venv .venv && .venv/bin/pip install -q -e '.[dev]' && .venv/bin/pytest"
        assert (True, True) == (demo in readme, tests in readme)

    def test_api_reference_covers_every_public_name(self) -> None:
        """``docs/api.md`` documents every name in ``hogtrace.__all__`` and ``hogtrace.testing``."""
        api = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
        headings = "\n".join(line for line in api.splitlines() if line.startswith("#"))
        names = [
            *(f"hogtrace.{n}" for n in hogtrace.__all__),
            *(f"hogtrace.testing.{n}" for n in hogtrace.testing.__all__),
            "hogtrace_events",
        ]
        missing = [n for n in names if n.rpartition(".")[2] not in headings]
        assert [] == missing

    def test_configuration_covers_every_option_and_variable(self) -> None:
        """``docs/configuration.md`` documents every ``configure()`` option and env variable."""
        import inspect

        page = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
        options = list(inspect.signature(hogtrace.configure).parameters)
        variables = [
            "POSTHOG_API_KEY",
            "POSTHOG_PROJECT_API_KEY",
            "POSTHOG_HOST",
            "HOGTRACE_CONSOLE",
            "HOGTRACE_ENABLED",
        ]
        missing = [n for n in [*options, *variables] if f"`{n}" not in page]
        assert [] == missing


# -- behaviour the docs promise, checked where it is easy to get wrong ---------------------------


@hogtrace.trace
def _documented(question: str) -> str:
    return question


class TestDocumentedBehaviour:
    def test_console_variable_turns_the_console_on(
        self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """``HOGTRACE_CONSOLE=1`` prints each trace on stderr (docs/configuration.md)."""
        for name in ("POSTHOG_API_KEY", "POSTHOG_PROJECT_API_KEY"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("HOGTRACE_CONSOLE", "1")
        hogtrace.reset()
        _documented("hi")
        hogtrace.flush()
        assert "_documented [trace]" in capsys.readouterr().err

    @pytest.mark.parametrize("value", ["False", "no", "off"])
    def test_console_variable_off_values(
        self, value: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """``HOGTRACE_CONSOLE`` set to an obvious "off" value leaves the console off."""
        for name in ("POSTHOG_API_KEY", "POSTHOG_PROJECT_API_KEY"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("HOGTRACE_CONSOLE", value)
        hogtrace.reset()
        _documented("hi")
        hogtrace.flush()
        assert "_documented [trace]" not in capsys.readouterr().err


class _RateLimited(Exception):
    status_code = 429


def _every_property() -> set[str]:
    """The ``$`` properties of the events of a workflow that uses every feature once."""
    from hogtrace.testing import capture_events

    @hogtrace.generation(provider="openai", base_url="https://api.example/v1")
    def chat(
        messages: list[dict[str, str]], tools: list[dict[str, str]], temperature: float
    ) -> Any:
        return {
            "object": "chat.completion",
            "model": "gpt-4o-mini",
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant"}}],
            "usage": {
                "prompt_tokens": 9,
                "completion_tokens": 2,
                "prompt_tokens_details": {"cached_tokens": 4},
                "completion_tokens_details": {"reasoning_tokens": 1},
            },
        }

    @hogtrace.generation(model="m")
    def stream(prompt: str) -> Iterator[str]:
        yield "a"

    @hogtrace.generation(model="m")
    def failing(prompt: str) -> str:
        raise _RateLimited("slow down")

    @hogtrace.embedding(model="e", provider="openai")
    def embed(input: list[str]) -> Any:
        return {"object": "list", "data": [], "usage": {"prompt_tokens": 1}}

    @hogtrace.span
    def big(text: str) -> str:
        return text

    with capture_events() as events:
        with hogtrace.session("s"), hogtrace.trace("t") as t:
            t.set_input("question")
            t.set_output("answer")
            chat([{"role": "user", "content": "hi"}], [{"type": "function"}], 0.1)
            list(stream("p"))
            with contextlib.suppress(_RateLimited):
                failing("p")
            embed(["x"])
            with hogtrace.generation("manual") as g:
                g.set_usage(1, 2, 3, 4, 5)
                g.set_cost(0.1, 0.2, 0.3)
                g.set_prompt("support", 2)
            with hogtrace.span("lookup", kind="tool"):
                pass
            hogtrace.metric("score", 1)
            hogtrace.feedback("good")
        hogtrace.configure(max_event_bytes=2_000)
        big("x" * 10_000)
    hogtrace.reset()
    return {key for e in events for key in e.properties if key.startswith("$")}


class TestConceptsPropertyTables:
    def test_tables_list_exactly_what_is_emitted(self) -> None:
        """The property tables of docs/concepts.md name every property hogtrace emits, no more."""
        page = (ROOT / "docs" / "concepts.md").read_text(encoding="utf-8")
        section = page.split("## What each event carries", 1)[1].split("\n## ", 1)[0]
        first_cells = [
            line.split("|")[1] for line in section.splitlines() if line.startswith("| `$")
        ]
        documented = set(re.findall(r"`(\$[a-z_]+)`", "\n".join(first_cells)))
        emitted = _every_property()
        assert (set(), set()) == (emitted - documented, documented - emitted)
