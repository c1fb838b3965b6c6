"""One Ember per data root: a second start brings the first window to the front and exits."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.gui.gui_helpers import LOAD_TIMEOUT_MS


def test_a_second_instance_activates_the_first(qtbot, tmp_path: Path):
    from ui.single_instance import SingleInstance, server_name

    first = SingleInstance(tmp_path / "a")
    assert first.claim()
    second = SingleInstance(tmp_path / "a")
    with qtbot.waitSignal(first.activated, timeout=5000):
        assert not second.claim()
    other_root = SingleInstance(tmp_path / "b")  # another data root runs side by side
    assert other_root.claim() and other_root.name != first.name
    assert server_name(tmp_path / "a") == first.name
    first.close()
    other_root.close()
    again = SingleInstance(tmp_path / "a")  # the name is free again once the first quits
    assert again.claim()
    again.close()


def test_starting_ember_again_raises_the_running_window(qtbot, core):
    from app.desktop import DesktopApp, single_instance

    instance = single_instance(core.paths)
    assert instance is not None and instance.claim()
    desktop = DesktopApp(core)
    qtbot.addWidget(desktop.window)
    instance.activated.connect(desktop.show_window)
    desktop.window.start(load_model=False)
    desktop.window.hide()  # as if closed to the tray
    env = {**os.environ, "EMBER_HOME": str(core.paths.home), "QT_QPA_PLATFORM": "offscreen"}
    proc = subprocess.Popen([sys.executable, "-m", "app", "desktop", "--quit-after", "30"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        with qtbot.waitSignal(instance.activated, timeout=LOAD_TIMEOUT_MS):
            pass
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        instance.close()
    assert proc.returncode == 0, out
    assert "already running" in out
    assert desktop.window.isVisible()
