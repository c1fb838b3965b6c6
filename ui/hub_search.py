"""Hub search: repositories matching a query, then the chosen repository's GGUF files with size and fit."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QAbstractItemView, QHBoxLayout, QHeaderView, QLabel, QLineEdit, QListWidget,
                               QListWidgetItem, QPushButton, QSplitter, QTableWidget, QTableWidgetItem, QVBoxLayout,
                               QWidget)

from storage.sizes import format_bytes
from ui.fit_badge import FitBadge

REPO_ROLE = Qt.ItemDataRole.UserRole


class HubSearch(QWidget):
    """Signals: ``searchRequested(query)``, ``repoSelected(repo_id)``, ``downloadRequested(repo_id, model, commit)``."""

    searchRequested = Signal(str)
    repoSelected = Signal(str)
    downloadRequested = Signal(str, object, str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.query = QLineEdit()
        self.query.setPlaceholderText("Search Hugging Face for GGUF models, e.g. qwen2.5 or llama 3.2")
        self.search_button = QPushButton("Search")
        self.results = QListWidget()
        self.files = QTableWidget(0, 5)
        self.files.setHorizontalHeaderLabels(("File", "Quant", "Size", "Fit", ""))
        self.files.verticalHeader().hide()
        self.files.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.files.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.files.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.status = QLabel("Search the Hub to find more models.")
        self.status.setObjectName("hint")
        top = QHBoxLayout()
        top.addWidget(self.query, 1)
        top.addWidget(self.search_button)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(self.results)
        split.addWidget(self.files)
        split.setSizes([260, 520])
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(split, 1)
        layout.addWidget(self.status)
        self.badges: dict[str, FitBadge] = {}
        self.download_buttons: dict[str, QPushButton] = {}
        self._repo = ("", "")
        self.query.returnPressed.connect(self._search)
        self.search_button.clicked.connect(self._search)
        self.results.currentItemChanged.connect(
            lambda item, _prev: self.repoSelected.emit(item.data(REPO_ROLE)) if item else None)

    def _search(self) -> None:
        self.status.setText("Searching…")
        self.searchRequested.emit(self.query.text().strip())

    def set_results(self, hits: list[Any]) -> None:
        """Show search hits (:class:`models.hub.RepoSummary`)."""
        self.results.clear()
        for h in hits:
            extra = "  (gated)" if h.gated else ""
            item = QListWidgetItem(f"{h.repo_id}{extra}\n↓ {h.downloads or 0:,}   ♥ {h.likes or 0:,}")
            item.setData(REPO_ROLE, h.repo_id)
            self.results.addItem(item)
        self.status.setText(f"{len(hits)} repositories" if hits else "No GGUF repositories match.")

    def set_files(self, repo: Any) -> None:
        """Show a repository's models (:class:`models.hub.RepoFiles`); fit badges wait for :meth:`set_fit`."""
        self._repo = (repo.repo_id, repo.commit)
        self.files.setRowCount(len(repo.models))
        self.badges, self.download_buttons = {}, {}
        for r, m in enumerate(repo.models):
            shards = f" ({m.shard_count} parts)" if m.shard_count > 1 else ""
            for c, text in enumerate((m.name + shards, m.quant or "?", format_bytes(m.size))):
                self.files.setItem(r, c, QTableWidgetItem(text))
            badge = FitBadge()
            self.badges[m.name] = badge
            self.files.setCellWidget(r, 3, badge)
            button = QPushButton("Download")
            button.setEnabled(m.complete)
            button.clicked.connect(lambda _=False, model=m: self.downloadRequested.emit(
                self._repo[0], model, self._repo[1]))
            self.download_buttons[m.name] = button
            self.files.setCellWidget(r, 4, button)
        self.files.resizeColumnsToContents()
        self.files.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.status.setText(f"{repo.repo_id}: {len(repo.models)} models" if repo.models else
                            f"{repo.repo_id} has no GGUF files.")

    def set_fit(self, name: str, result: Any) -> None:
        """Show the fit estimate of one listed model."""
        if name in self.badges:
            self.badges[name].set_fit(result)
            self.files.resizeColumnToContents(3)

    def set_fit_unknown(self, name: str, reason: str) -> None:
        """No estimate for one listed model."""
        if name in self.badges:
            self.badges[name].set_unknown(reason)
            self.files.resizeColumnToContents(3)

    def set_error(self, message: str) -> None:
        """A search or listing failed."""
        self.status.setText(message)
