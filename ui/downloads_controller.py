"""Runs model downloads one at a time off the GUI thread and keeps the downloads panel current."""

from __future__ import annotations

import logging
from typing import Any

from PySide6.QtCore import QObject, Qt, Signal

from models.downloads import DownloadManager
from ui.background import Background
from ui.downloads_panel import DownloadsPanel

log = logging.getLogger(__name__)


class DownloadsController(QObject):
    """Signals: ``finished(model_name)`` (a model was added to the library), ``failed(message)``."""

    finished = Signal(str)
    failed = Signal(str)
    _progress = Signal(object)

    def __init__(self, manager: DownloadManager, panel: DownloadsPanel, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.manager = manager
        self.panel = panel
        self._runner = Background(self, workers=1)  # one download at a time, in queue order
        self._progress.connect(panel.progress, Qt.ConnectionType.QueuedConnection)
        panel.pauseRequested.connect(self.pause)
        panel.resumeRequested.connect(self.resume)
        panel.cancelRequested.connect(self.cancel)
        self.refresh()

    def refresh(self) -> None:
        """Reload every download's state from the database."""
        self.panel.set_downloads(self.manager.list())

    def download(self, repo_id: str, model: Any, commit: str) -> int:
        """Queue a model (:class:`models.quant.ModelFiles`) and start it when the ones before it are done."""
        dl = self.manager.enqueue(repo_id, model, revision=commit)
        self.refresh()
        self._start(dl.id)
        return dl.id

    def pause(self, download_id: int) -> None:
        """Pause (the running download stops after its current chunk; partial files are kept)."""
        self.manager.pause(download_id)
        self.refresh()

    def resume(self, download_id: int) -> None:
        """Resume a paused download or retry a failed one."""
        self.manager.resume(download_id)
        self.refresh()
        self._start(download_id)

    def cancel(self, download_id: int) -> None:
        """Cancel and remove the partial files."""
        self.manager.cancel(download_id)
        self.refresh()

    def shutdown(self) -> None:
        """Pause the running downloads (they resume next time) and wait for the worker."""
        for dl in self.manager.list(unfinished=True):
            if dl.state.value == "running":
                self.manager.pause(dl.id)
        self._runner.shutdown()

    def _start(self, download_id: int) -> None:
        manager = self.manager
        self._runner.run(lambda: manager.run(download_id, on_progress=self._progress.emit),
                         self._done, self._stopped)

    def _done(self, model: Any) -> None:
        self.refresh()
        self.finished.emit(model.name)

    def _stopped(self, message: str) -> None:
        self.refresh()
        states = {d.id: d.state.value for d in self.manager.list()}
        if "failed" in states.values() and "paused" not in message and "cancelled" not in message:
            self.failed.emit(message)
