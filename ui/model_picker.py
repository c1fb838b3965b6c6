"""The chat header: which model answers, Load/Unload, load progress with Cancel; below, the draft and router
choices (:mod:`ui.draft_choice`, :mod:`ui.router_choice`)."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (QComboBox, QFileDialog, QHBoxLayout, QLabel, QProgressBar, QPushButton, QToolButton,
                               QVBoxLayout, QWidget)

from models.library import LibraryModel
from ui.draft_choice import DraftChoice
from ui.router_choice import RouterChoice


class ModelPicker(QWidget):
    """Signals: ``modelSelected(name)``, ``loadRequested(name)``, ``unloadRequested()``, ``cancelRequested()``;
    ``draft.changed(choice)`` and ``router.changed(policy, large)`` on the second row."""

    modelSelected = Signal(str)
    loadRequested = Signal(str)
    unloadRequested = Signal()
    cancelRequested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.combo = QComboBox()
        self.combo.setAccessibleName("Model")
        self.combo.setMinimumWidth(260)
        self.combo.setToolTip("The model that answers in this window")
        self.open_button = QToolButton(text="…")
        self.open_button.setToolTip("Use a .gguf file that is not in the library")
        self.load_button = QPushButton("Load")
        self.unload_button = QPushButton("Unload")
        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        self.progress.setMaximumWidth(180)
        self.progress.setFormat("Loading %p%")
        self.cancel_button = QPushButton("Cancel")
        self.status = QLabel("No model loaded")
        self.status.setObjectName("hint")
        self.draft = DraftChoice()
        self.router = RouterChoice()
        rows = QVBoxLayout(self)
        rows.setContentsMargins(16, 8, 16, 4)
        rows.setSpacing(4)
        layout = QHBoxLayout()
        rows.addLayout(layout)
        options = QHBoxLayout()
        options.addWidget(self.draft)
        options.addSpacing(16)
        options.addWidget(self.router, 1)
        rows.addLayout(options)
        layout.addWidget(QLabel("Model"))
        layout.addWidget(self.combo)
        layout.addWidget(self.open_button)
        layout.addWidget(self.load_button)
        layout.addWidget(self.unload_button)
        layout.addWidget(self.progress)
        layout.addWidget(self.cancel_button)
        layout.addStretch(1)
        layout.addWidget(self.status)
        self._loaded: str | None = None
        self.set_loading(False)
        self.combo.currentIndexChanged.connect(self._selected)
        self.load_button.clicked.connect(lambda: self.loadRequested.emit(self.current()))
        self.unload_button.clicked.connect(self.unloadRequested.emit)
        self.cancel_button.clicked.connect(self.cancelRequested.emit)
        self.open_button.clicked.connect(self._open_file)

    def current(self) -> str:
        """The selected model's name (or file path)."""
        return self.combo.currentData() or ""

    def set_models(self, models: list[LibraryModel], selected: str | None = None) -> None:
        """Fill the list (and the router's large tiers); keeps (or sets) the selection."""
        self.router.set_models([m.name for m in models])
        keep = selected or self.current()
        self.combo.blockSignals(True)
        self.combo.clear()
        for m in models:
            label = m.name + (f"  ({m.quantization})" if m.quantization else "")
            self.combo.addItem(label, m.name)
            if keep in m.aliases:
                keep = m.name
        index = self.combo.findData(keep)
        if index < 0 and keep:
            self.combo.addItem(keep, keep)
            index = self.combo.count() - 1
        self.combo.setCurrentIndex(max(index, 0))
        self.combo.blockSignals(False)
        self._sync_buttons()

    def select(self, name: str) -> None:
        """Select a model (a path not in the list is added)."""
        index = self.combo.findData(name)
        if index < 0:
            self.combo.addItem(name, name)
            index = self.combo.count() - 1
        self.combo.setCurrentIndex(index)

    def set_loading(self, loading: bool) -> None:
        """Show the progress bar and Cancel while a load runs."""
        self.progress.setVisible(loading)
        self.cancel_button.setVisible(loading)
        if loading:
            self.progress.setValue(0)
            self.status.setText("Loading…")
        self._sync_buttons(loading)

    def set_progress(self, fraction: float) -> None:
        """Load progress, 0..1."""
        self.progress.setValue(round(fraction * 100))

    def set_loaded(self, name: str | None) -> None:
        """The model now in memory (None: none)."""
        self._loaded = name
        self.status.setText(f"Loaded: {name}" if name else "No model loaded")
        self._sync_buttons()

    def _selected(self) -> None:
        self._sync_buttons()
        self.modelSelected.emit(self.current())

    def _sync_buttons(self, loading: bool = False) -> None:
        loading = loading or self.progress.isVisible()
        self.load_button.setEnabled(not loading and bool(self.current()) and self.current() != self._loaded)
        self.unload_button.setEnabled(not loading and self._loaded is not None)
        self.combo.setEnabled(not loading)

    def _open_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Use a model file", "", "GGUF models (*.gguf)")
        if path:
            self.select(path)
            self.loadRequested.emit(path)
