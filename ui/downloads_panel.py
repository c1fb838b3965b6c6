"""Downloads: progress, rate and ETA of each model download, with pause, resume, cancel and Retry."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (QFrame, QGridLayout, QLabel, QProgressBar, QPushButton, QScrollArea, QVBoxLayout,
                               QWidget)

from storage.sizes import format_bytes



def describe(done: int, total: int, rate: float | None, eta: float | None) -> str:
    """``12.0 MB of 140.0 MB · 5.1 MB/s · 25 s left``."""
    parts = [f"{format_bytes(done)} of {format_bytes(total)}"]
    if rate:
        parts.append(f"{format_bytes(int(rate))}/s")
    if eta is not None:
        parts.append(f"{eta:.0f} s left" if eta < 120 else f"{eta / 60:.0f} min left")
    return " · ".join(parts)


class DownloadRow(QFrame):
    """One download. Signals: ``pauseRequested(id)``, ``resumeRequested(id)``, ``cancelRequested(id)``."""

    pauseRequested = Signal(int)
    resumeRequested = Signal(int)
    cancelRequested = Signal(int)

    def __init__(self, download: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("codeBlock")
        self.download_id = download.id
        self.title = QLabel(f"<b>{download.model_file}</b>  <span>from {download.repo_id}</span>")
        self.bar = QProgressBar()
        self.bar.setRange(0, 1000)
        self.detail = QLabel()
        self.detail.setObjectName("hint")
        self.error = QLabel()
        self.error.setObjectName("errorText")
        self.error.setWordWrap(True)
        self.pause_button = QPushButton("Pause")
        self.resume_button = QPushButton("Resume")
        self.retry_button = QPushButton("Retry")
        self.cancel_button = QPushButton("Cancel")
        grid = QGridLayout(self)
        grid.addWidget(self.title, 0, 0, 1, 4)
        grid.addWidget(self.bar, 1, 0, 1, 4)
        grid.addWidget(self.detail, 2, 0)
        grid.addWidget(self.pause_button, 2, 1)
        grid.addWidget(self.resume_button, 2, 1)
        grid.addWidget(self.retry_button, 2, 1)
        grid.addWidget(self.cancel_button, 2, 2)
        grid.addWidget(self.error, 3, 0, 1, 4)
        grid.setColumnStretch(0, 1)
        self.pause_button.clicked.connect(lambda: self.pauseRequested.emit(self.download_id))
        self.resume_button.clicked.connect(lambda: self.resumeRequested.emit(self.download_id))
        self.retry_button.clicked.connect(lambda: self.resumeRequested.emit(self.download_id))
        self.cancel_button.clicked.connect(lambda: self.cancelRequested.emit(self.download_id))
        self.state = ""
        self.set_state(getattr(download.state, "value", str(download.state)), download.error)
        self.set_progress(download.done, download.total, None, None)

    def set_progress(self, done: int, total: int, rate: float | None, eta: float | None) -> None:
        """Bytes so far, rate and time left."""
        self.bar.setValue(int(1000 * done / total) if total else 0)
        self.detail.setText(describe(done, total, rate, eta) if self.state == "running" else
                            f"{format_bytes(done)} of {format_bytes(total)} · {self.state}")

    def set_state(self, state: str, error: str | None = None) -> None:
        """queued / running / paused / failed / done / cancelled, with the failure reason."""
        self.state = state
        self.pause_button.setVisible(state in ("queued", "running"))
        self.resume_button.setVisible(state == "paused")
        self.retry_button.setVisible(state == "failed")
        self.cancel_button.setVisible(state not in ("done", "cancelled"))
        self.error.setVisible(bool(error) and state == "failed")
        self.error.setText(error or "")
        if state == "done":
            self.bar.setValue(1000)


class DownloadsPanel(QWidget):
    """The list of downloads, newest first; rows come and go with :meth:`set_downloads`."""

    pauseRequested = Signal(int)
    resumeRequested = Signal(int)
    cancelRequested = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title = QLabel("Downloads")
        self.title.setObjectName("emptyTitle")
        self.empty = QLabel("No downloads yet. Find a model in the Library and press Download.")
        self.empty.setObjectName("hint")
        self._column = QWidget()
        self._rows_layout = QVBoxLayout(self._column)
        self._rows_layout.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setWidget(self._column)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(24, 16, 24, 16)
        layout.addWidget(self.title)
        layout.addWidget(self.empty)
        layout.addWidget(scroll, 1)
        self.rows: dict[int, DownloadRow] = {}

    def set_downloads(self, downloads: list[Any]) -> None:
        """Show these downloads (:class:`storage.downloads.Download`), keeping existing rows."""
        for dl in downloads:
            row = self.rows.get(dl.id)
            if row is None:
                row = DownloadRow(dl)
                row.pauseRequested.connect(self.pauseRequested.emit)
                row.resumeRequested.connect(self.resumeRequested.emit)
                row.cancelRequested.connect(self.cancelRequested.emit)
                self._rows_layout.insertWidget(0, row)
                self.rows[dl.id] = row
            else:
                row.set_state(getattr(dl.state, "value", str(dl.state)), dl.error)
                row.set_progress(dl.done, dl.total, None, None)
        self.empty.setVisible(not self.rows)

    def progress(self, report: Any) -> None:
        """A :class:`models.downloads.Progress` report."""
        row = self.rows.get(report.download_id)
        if row is not None:
            row.set_state(getattr(report.state, "value", str(report.state)), row.error.text() or None)
            row.set_progress(report.done, report.total, report.rate, report.eta)
