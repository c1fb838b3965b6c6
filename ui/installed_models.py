"""The library's installed models: name, quantisation, size, context, last used and fit; import and delete."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (QAbstractItemView, QHBoxLayout, QHeaderView, QLabel, QPushButton, QTableWidget,
                               QTableWidgetItem, QVBoxLayout, QWidget)

from models.library import LibraryModel
from storage.sizes import format_bytes
from ui.fit_badge import FitBadge

COLUMNS = ("Name", "Quant", "Size", "Context", "Last used", "Fit")


class InstalledModels(QWidget):
    """Signals: ``importRequested()``, ``deleteRequested(name)``, ``useRequested(name)``."""

    importRequested = Signal()
    deleteRequested = Signal(str)
    useRequested = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setAccessibleName("Installed models")
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.import_button = QPushButton("Import .gguf…")
        self.use_button = QPushButton("Use in chat")
        self.delete_button = QPushButton("Delete…")
        self.hint = QLabel("Drop .gguf files here to add them to the library.")
        self.hint.setObjectName("hint")
        row = QHBoxLayout()
        row.addWidget(self.hint, 1)
        for b in (self.import_button, self.use_button, self.delete_button):
            row.addWidget(b)
        layout = QVBoxLayout(self)
        layout.addWidget(self.table, 1)
        layout.addLayout(row)
        self.badges: dict[str, FitBadge] = {}
        self.import_button.clicked.connect(self.importRequested.emit)
        self.delete_button.clicked.connect(lambda: self._emit_selected(self.deleteRequested))
        self.use_button.clicked.connect(lambda: self._emit_selected(self.useRequested))
        self.table.itemSelectionChanged.connect(self._sync)
        self._sync()

    def names(self) -> list[str]:
        """Model names in table order."""
        return [self.table.item(r, 0).text() for r in range(self.table.rowCount())]

    def selected(self) -> str | None:
        """The selected model's name."""
        rows = self.table.selectionModel().selectedRows()
        return self.table.item(rows[0].row(), 0).text() if rows else None

    def select(self, name: str) -> None:
        """Select a model's row."""
        if name in self.names():
            self.table.selectRow(self.names().index(name))

    def set_models(self, models: list[LibraryModel]) -> None:
        """Show these models (fit badges wait for :meth:`set_fit`)."""
        self.table.setRowCount(len(models))
        self.badges = {}
        for r, m in enumerate(models):
            cells = (m.name, m.quantization or "?", format_bytes(m.size),
                     f"{m.context_length:,}" if m.context_length else "?", (m.last_used or "never")[:10])
            for c, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setToolTip(str(m.path) if c == 0 else text)
                self.table.setItem(r, c, item)
            badge = FitBadge()
            self.badges[m.name] = badge
            self.table.setCellWidget(r, len(COLUMNS) - 1, badge)
        self.table.resizeColumnsToContents()
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self._sync()

    def set_fit(self, name: str, result: object) -> None:
        """Show a model's fit estimate."""
        if name in self.badges:
            self.badges[name].set_fit(result)
            self.table.resizeColumnToContents(len(COLUMNS) - 1)

    def _emit_selected(self, signal: Signal) -> None:
        name = self.selected()
        if name:
            signal.emit(name)

    def _sync(self) -> None:
        has = self.selected() is not None
        self.delete_button.setEnabled(has)
        self.use_button.setEnabled(has)
