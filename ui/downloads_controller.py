"""Connects the downloads panel to the download manager, whose own worker thread runs the queue one download at a
time; progress comes back to the GUI thread as a queued signal."""

from __future__ import annotations

import logging
from typing import Any

from PySide6.QtCore import QObject, Qt, Signal

from models.downloads import DownloadManager, Progress
from storage.downloads import Download, DownloadState
from models.library import default_name
from ui.background import Background
from ui.downloads_panel import DownloadsPanel

log = logging.getLogger(__name__)


class DownloadsController(QObject):
    """Signals: ``queued(download)`` (a :class:`storage.downloads.Download` was queued or found unfinished),
    ``finished(model_name)`` (a model was added to the library), ``failed(message)``.
    """

    queued = Signal(object)
    finished = Signal(str)
    failed = Signal(str)
    _progress = Signal(object)

    def __init__(self, manager: DownloadManager, panel: DownloadsPanel, background: Background,
                 parent: QObject | None = None) -> None:
        """
        Args:
            manager: the download manager; its worker starts with :meth:`start`, its progress reports reach the
                panel.
            panel: the downloads panel.
            background: runs queueing (disk checks, database writes) off the GUI thread.
        """
        super().__init__(parent)
        self.manager = manager
        self.panel = panel
        self._background = background
        self._progress.connect(self._report, Qt.ConnectionType.QueuedConnection)
        manager.on_progress = self._progress.emit  # called on the worker thread; delivered on the GUI thread
        panel.pauseRequested.connect(self.pause)
        panel.resumeRequested.connect(self.resume)
        panel.cancelRequested.connect(self.cancel)
        self.refresh()

    def start(self) -> None:
        """Start the manager's worker: queued downloads (also those left queued by an earlier run) begin."""
        self.manager.start()

    def refresh(self) -> None:
        """Reload every download's state from the database."""
        self.panel.set_downloads(self.manager.list())

    def download(self, repo_id: str, model: Any, commit: str) -> None:
        """Queue a model (:class:`models.quant.ModelFiles`) off the GUI thread; ``queued`` or ``failed`` follows.

        Asking again for a model that is queued or running finds the same download (it runs once).
        """
        manager = self.manager
        self._background.run(lambda: manager.enqueue(repo_id, model, revision=commit), self._queued,
                             self._enqueue_failed)

    def pause(self, download_id: int) -> None:
        """Pause (a running download stops after its current chunk; partial files are kept)."""
        self.manager.pause(download_id)
        self.refresh()

    def resume(self, download_id: int) -> None:
        """Resume a paused download or retry a failed one (it joins the queue)."""
        self.manager.resume(download_id)
        self.refresh()

    def cancel(self, download_id: int) -> None:
        """Cancel and remove the partial files."""
        self.manager.cancel(download_id)
        self.refresh()

    def shutdown(self) -> None:
        """Pause the running download (it resumes next time) and stop the manager's worker."""
        self.manager.shutdown()

    def _queued(self, download: Download) -> None:
        self.refresh()
        self.queued.emit(download)

    def _enqueue_failed(self, message: str) -> None:
        self.refresh()  # a download refused for disk space is listed as failed, with the reason
        self.failed.emit(message)

    def _report(self, report: Progress) -> None:
        """A progress report from the worker thread, now on the GUI thread."""
        if report.download_id not in self.panel.rows:
            self.refresh()  # started before its queueing was delivered here, or queued by an earlier run
        self.panel.progress(report)
        if report.state is DownloadState.RUNNING:
            return
        self.refresh()
        if report.state is DownloadState.DONE:
            dl = self.manager.get(report.download_id)
            self.finished.emit(dl.name or default_name(dl.model_file))
        elif report.state is DownloadState.FAILED:
            dl = self.manager.get(report.download_id)
            self.failed.emit(dl.error or f"Downloading {dl.model_file} failed.")
