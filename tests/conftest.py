"""Fixtures shared by every test: a private EMBER_HOME, offscreen Qt, and log warnings that fail the test."""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path

import keyring
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

# Tests stop servers they start with SIGINT (Ctrl-C). A shell that runs the suite in the background (`make test &`
# without job control) starts it with SIGINT ignored, which every child would inherit, so no server would stop:
# restore Python's own handler, which children reset to the default.
signal.signal(signal.SIGINT, signal.default_int_handler)

# Folders whose every test is slow (the real model, a real server, real widgets): marked ``integration`` by path, so
# ``pytest -m "not integration"`` is the fast suite (tests/unit). A unit test that loads the real model marks itself.
INTEGRATION_FOLDERS = ("integration", "api", "gui")


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """With ``-m "not integration"`` the integration folders are not even imported (every test there would be
    deselected): the fast suite does not pay for importing Qt widgets and the API clients."""
    if " ".join(config.getoption("markexpr", "").split()) != "not integration":
        return None
    try:
        folder = collection_path.relative_to(Path(__file__).parent).parts[0]
    except (ValueError, IndexError):
        return None
    return True if folder in INTEGRATION_FOLDERS else None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test under tests/integration, tests/api and tests/gui ``integration``."""
    tests_dir = Path(__file__).parent
    for item in items:
        try:
            folder = item.path.relative_to(tests_dir).parts[0]
        except ValueError:
            continue
        if folder in INTEGRATION_FOLDERS:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(autouse=True)
def ember_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point EMBER_HOME at a fresh temporary folder so no test touches real user data."""
    home = tmp_path / "ember-home"
    monkeypatch.setenv("EMBER_HOME", str(home))
    return home


@pytest.fixture(autouse=True)
def isolated_keyring(monkeypatch: pytest.MonkeyPatch):
    """No test reads or writes the machine's keyring (a developer's Hub token or API token): the keyring is the
    failing backend unless a test installs ``memory_keyring``; subprocesses (``ember serve``) inherit the choice."""
    from keyring.backends import fail

    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
    previous = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    yield
    keyring.set_keyring(previous)


@pytest.fixture(autouse=True)
def fail_on_log_warnings(caplog: pytest.LogCaptureFixture, request: pytest.FixtureRequest):
    """An unexpected WARNING (or worse) logged by Ember's code fails the test.

    Tests that expect a warning mark themselves ``@pytest.mark.allow_log_warnings``.
    """
    caplog.set_level(logging.INFO)
    yield
    if request.node.get_closest_marker("allow_log_warnings"):
        return
    bad = [r for r in caplog.get_records("call") if r.levelno >= logging.WARNING
           and r.name.split(".")[0] in {"ember", "app", "ui", "inference", "models", "storage"}]
    if bad:
        pytest.fail("unexpected log warnings:\n" + "\n".join(f"{r.levelname} {r.name}: {r.getMessage()}"
                                                            for r in bad))


@pytest.fixture()
def memory_keyring():
    """An in-memory keyring installed for one test (the real keyring API; no OS daemon here)."""
    from tests.helpers import MemoryKeyring

    previous = keyring.get_keyring()
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    yield backend
    keyring.set_keyring(previous)


@pytest.fixture()
def no_keyring():
    """No OS keyring, whatever this machine has or an earlier test chose."""
    from keyring.backends import fail

    previous = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    yield
    keyring.set_keyring(previous)
