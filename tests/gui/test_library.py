"""Library page: import (file and drag-and-drop), refusal of a truncated file, delete with the freed size,
Hub search with fit badges, and a download through the downloads panel (against the local fake Hub)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from PySide6.QtCore import QMimeData, QPoint, Qt, QUrl
from PySide6.QtGui import QDropEvent

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: the fake Hub and GGUF writer

from fakehub import FakeHub, FakeRepo, fake_hub  # noqa: E402,F401  (fixture)
from model_repos import TINY, TINY_FILE, model_bytes  # noqa: E402

from ui import dialogs  # noqa: E402


def _import(qtbot, window, path: Path):
    page = window.library_page
    with qtbot.waitSignal(page.modelsChanged, timeout=10_000):
        page.import_files([path])


def test_import_good_file_and_refuse_truncated_one(qtbot, window, starter, tmp_path):
    page = window.library_page
    good = tmp_path / "My-Model.Q4_1.gguf"
    shutil.copyfile(starter, good)
    _import(qtbot, window, good)
    assert "my-model" in " ".join(page.installed.names()).lower()
    assert page.installed.selected() in page.installed.names()
    assert window.picker.combo.findData(page.installed.selected()) >= 0, "the chat's model list is refreshed"

    broken = tmp_path / "broken.gguf"
    broken.write_bytes(starter.read_bytes()[: 3 << 20])
    with qtbot.waitSignal(page.error, timeout=10_000) as blocker:
        page.import_files([broken])
    assert "broken.gguf" in blocker.args[0]
    assert window.banner.isVisible() and "broken.gguf" in window.banner.text
    assert len(page.installed.names()) == 2


def test_drag_and_drop_imports(qtbot, window, starter, tmp_path):
    page = window.library_page
    window.show_page("library")
    dropped = tmp_path / "dropped.gguf"
    shutil.copyfile(starter, dropped)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(dropped))])
    event = QDropEvent(QPoint(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                       Qt.KeyboardModifier.NoModifier)
    with qtbot.waitSignal(page.modelsChanged, timeout=10_000):
        page.dropEvent(event)
    assert "dropped" in page.installed.names()


def test_delete_confirms_the_freed_size(qtbot, window, starter, monkeypatch):
    page = window.library_page
    inside = window.core.paths.models / "copy.gguf"
    shutil.copyfile(starter, inside)
    _import(qtbot, window, inside)
    asked: list[str] = []
    monkeypatch.setattr(dialogs, "confirm", lambda _p, _t, text, **_k: asked.append(text) or False)
    assert not page.delete("copy")
    assert inside.exists() and "freed" not in asked[0] and "frees" in asked[0]
    assert "MiB" in asked[0]
    monkeypatch.setattr(dialogs, "confirm", lambda *_a, **_k: True)
    with qtbot.waitSignal(page.modelsChanged, timeout=10_000):
        assert page.delete("copy")
    assert not inside.exists() and "copy" not in page.installed.names()


def test_hub_search_files_fit_and_download(fake_hub: FakeHub, qtbot, window):  # noqa: F811
    fake_hub.add(FakeRepo(TINY, {TINY_FILE: model_bytes(1), "README.md": b"x"}, downloads=9))
    page = window.library_page
    hub = page.hub
    window.show_page("library")
    page.tabs.setCurrentWidget(hub)
    hub.query.setText("tiny")
    qtbot.mouseClick(hub.search_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: hub.results.count() == 1, timeout=10_000)
    hub.results.setCurrentRow(0)
    qtbot.waitUntil(lambda: hub.files.rowCount() == 1, timeout=10_000)
    name = next(iter(hub.badges))
    qtbot.waitUntil(lambda: hub.badges[name].text() not in ("…",), timeout=10_000)
    assert hub.badges[name].text() in ("fits on GPU", "partial offload", "CPU only", "does not fit")
    with qtbot.waitSignal(window.downloads.finished, timeout=30_000):
        qtbot.mouseClick(hub.download_buttons[name], Qt.MouseButton.LeftButton)
    row = next(iter(window.downloads_panel.rows.values()))
    assert row.state == "done" and row.bar.value() == 1000
    assert any("tiny" in n for n in page.installed.names())


def test_downloads_panel_pause_and_resume(fake_hub: FakeHub, qtbot, window):  # noqa: F811
    fake_hub.add(FakeRepo(TINY, {TINY_FILE: model_bytes(2, 6 << 20)}))
    fake_hub.throttle = 0.01
    from models.hub import HubClient

    repo = HubClient().files(TINY)
    controller = window.downloads
    with qtbot.waitSignal(controller.queued, timeout=10_000) as queued:
        controller.download(TINY, repo.models[0], repo.commit)
    row = window.downloads_panel.rows[queued.args[0].id]
    qtbot.waitUntil(lambda: row.state == "running", timeout=10_000)
    qtbot.mouseClick(row.pause_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: row.state == "paused", timeout=10_000)
    assert row.resume_button.isVisibleTo(window.downloads_panel)
    fake_hub.throttle = 0
    with qtbot.waitSignal(controller.finished, timeout=30_000):
        qtbot.mouseClick(row.resume_button, Qt.MouseButton.LeftButton)
    assert row.state == "done"


def test_download_paused_while_queued_does_not_run(fake_hub: FakeHub, qtbot, window):  # noqa: F811
    fake_hub.add(FakeRepo(TINY, {TINY_FILE: model_bytes(2, 6 << 20), "tiny.Q8_0.gguf": model_bytes(3, 1 << 20)}))
    fake_hub.throttle = 0.01
    from models.hub import HubClient

    repo = HubClient().files(TINY)
    first, second = sorted(repo.models, key=lambda m: m.name)  # Q4_K_M (slow), then Q8_0
    controller, rows = window.downloads, window.downloads_panel.rows
    controller.download(TINY, first, repo.commit)
    qtbot.waitUntil(lambda: len(rows) == 1 and next(iter(rows.values())).state == "running", timeout=10_000)
    controller.download(TINY, second, repo.commit)
    qtbot.waitUntil(lambda: len(rows) == 2, timeout=10_000)
    first_id, second_id = sorted(rows)
    assert rows[second_id].state == "queued"
    qtbot.mouseClick(rows[second_id].pause_button, Qt.MouseButton.LeftButton)
    assert rows[second_id].state == "paused"
    fake_hub.throttle = 0
    with qtbot.waitSignal(controller.finished, timeout=30_000):
        pass
    qtbot.wait(500)  # time for a wrongly started second download to begin
    assert rows[first_id].state == "done" and rows[second_id].state == "paused"
    assert fake_hub.file_gets("tiny.Q8_0.gguf") == []
    # Resume puts it back in the queue, and it runs.
    with qtbot.waitSignal(controller.finished, timeout=30_000) as done:
        qtbot.mouseClick(rows[second_id].resume_button, Qt.MouseButton.LeftButton)
    assert done.args == ["tiny.q8-0"] and rows[second_id].state == "done"


def test_download_left_queued_runs_on_the_manager_worker(fake_hub: FakeHub, qtbot, window):  # noqa: F811
    """A download in the queue that no button started (as after a crash or quit) runs."""
    fake_hub.add(FakeRepo(TINY, {TINY_FILE: model_bytes(1)}))
    from models.hub import HubClient

    repo = HubClient().files(TINY)
    finished: list[str] = []
    window.downloads.finished.connect(finished.append)
    with qtbot.waitSignal(window.downloads.finished, timeout=30_000):
        window.downloads.manager.enqueue(TINY, repo.models[0], revision=repo.commit)
    qtbot.wait(200)
    assert finished == ["tiny.q4-k-m"]
    assert next(iter(window.downloads_panel.rows.values())).state == "done"


def test_download_refused_for_disk_space_shows_the_error_off_the_gui_thread(
        fake_hub: FakeHub, qtbot, window, monkeypatch):  # noqa: F811
    import threading
    from collections import namedtuple

    fake_hub.add(FakeRepo(TINY, {TINY_FILE: model_bytes(1)}))
    from models.hub import HubClient

    repo = HubClient().files(TINY)
    usage = namedtuple("usage", "total used free")
    threads: list[threading.Thread] = []
    monkeypatch.setattr("shutil.disk_usage",
                        lambda p: threads.append(threading.current_thread()) or usage(1 << 30, 1 << 30, 1 << 20))
    window.statusBar().clearMessage()
    window.library_page.downloadRequested.emit(TINY, repo.models[0], repo.commit)
    qtbot.waitUntil(lambda: window.banner.isVisible(), timeout=10_000)
    assert "Not enough disk space" in window.banner.text and "Free some space" in window.banner.text
    assert "Downloading" not in window.statusBar().currentMessage()
    assert threads and threading.main_thread() not in threads
    assert not fake_hub.file_gets(TINY_FILE)


def test_screenshots_of_library_downloads_and_settings(fake_hub: FakeHub, qtbot, window, tmp_path):  # noqa: F811
    import os

    from PySide6.QtGui import QImage

    fake_hub.add(FakeRepo(TINY, {TINY_FILE: model_bytes(1), "tiny.Q8_0.gguf": model_bytes(3, 5 << 20)},
                          downloads=1234, likes=56))
    fake_hub.add(FakeRepo("ember-test/other-GGUF", {"other.Q4_0.gguf": model_bytes(4)}, downloads=77))
    out = Path(os.environ.get("EMBER_SCREENSHOTS", tmp_path))
    out.mkdir(parents=True, exist_ok=True)
    window.resize(1120, 740)
    page = window.library_page
    window.show_page("library")
    qtbot.waitUntil(lambda: all(b.text() != "…" for b in page.installed.badges.values()), timeout=10_000)
    page.tabs.setCurrentWidget(page.hub)
    page.hub.query.setText("GGUF")
    page.hub.search_button.click()
    qtbot.waitUntil(lambda: page.hub.results.count() == 2, timeout=10_000)
    page.hub.results.setCurrentRow(0)
    qtbot.waitUntil(lambda: page.hub.files.rowCount() == 2 and
                    all(b.text() != "…" for b in page.hub.badges.values()), timeout=10_000)

    fake_hub.throttle = 0.02
    from models.hub import HubClient

    repo = HubClient().files(TINY)
    with qtbot.waitSignal(window.downloads.queued, timeout=10_000) as queued:
        window.downloads.download(TINY, repo.models[-1], repo.commit)
    download_id = queued.args[0].id
    row = window.downloads_panel.rows[download_id]
    window.show_page("downloads")
    qtbot.waitUntil(lambda: row.state == "running" and row.bar.value() > 0, timeout=10_000)
    assert window.grab().save(str(out / "downloads.png"))
    window.downloads.pause(download_id)
    qtbot.waitUntil(lambda: row.state == "paused", timeout=10_000)
    window.show_page("library")
    assert window.grab().save(str(out / "library.png"))
    dialog = window.open_settings()
    qtbot.waitExposed(dialog)
    assert dialog.grab().save(str(out / "settings.png"))
    dialog.reject()
    for name in ("library.png", "downloads.png", "settings.png"):
        image = QImage(str(out / name))
        assert image.width() > 500 and image.height() > 400, name
