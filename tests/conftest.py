"""Shared fixtures: a clean hogtrace per test, strict internal errors, a local capture server."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from hypothesis import settings

import hogtrace
from hogtrace import _errors
from tests.capture_server import CaptureServer, Clients
from tests.openai_server import OpenAIServer

# CI (`.ci/run` sets CI=1) draws the same examples every run, so a red build is reproducible
# and never a roll of the dice; a run on a developer's machine explores new ones each time.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


@pytest.fixture(autouse=True)
def _clean_hogtrace() -> Iterator[None]:
    """Every test starts from default configuration, and hogtrace's own bugs raise."""
    hogtrace.reset()
    _errors.STRICT = True
    yield
    _errors.STRICT = False
    hogtrace.reset()


@pytest.fixture
def capture_server() -> Iterator[CaptureServer]:
    """A recording PostHog capture server on 127.0.0.1 (stdlib only)."""
    server = CaptureServer()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def llm_server() -> Iterator[OpenAIServer]:
    """The local OpenAI/Anthropic-compatible endpoint on 127.0.0.1 (stdlib only)."""
    server = OpenAIServer()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def clients(capture_server: CaptureServer) -> Iterator[Clients]:
    """Real posthog clients to the capture server, shut down after the test."""
    made = Clients(capture_server)
    try:
        yield made
    finally:
        hogtrace.reset()
        made.close()
