"""What an empty chat shows: the model is ready, type below, and where to get more models."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

HINT_WIDTH = 560  # px: about 75 characters a line, easy to read

HINT = ("Type a message below and press Enter. {model}\n"
        "Want a bigger or smarter model? Open the Library to search Hugging Face, check what fits your "
        "machine and download it, or drop a .gguf file onto the Library page.")


class EmptyState(QWidget):
    """The first-run (and new chat) hint. Signal: ``openLibraryRequested()``."""

    openLibraryRequested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title = QLabel("What can I help with?")
        self.title.setObjectName("emptyTitle")
        self.title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.hint = QLabel()
        self.hint.setObjectName("hint")
        self.hint.setWordWrap(True)
        self.hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.hint.setMaximumWidth(HINT_WIDTH)
        self.library_button = QPushButton("Browse models")
        self.library_button.setToolTip("Open the Library: installed models, Hugging Face search, import")
        self.library_button.clicked.connect(self.openLibraryRequested.emit)
        # The hint sits in a row between stretches, not in an aligned layout cell: a cell given an alignment is
        # sized from sizeHint() alone, which ignores word wrap, and cut the wrapped lines through the middle.
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(self.hint, 100)
        row.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(24, 24, 24, 24)
        layout.setSpacing(12)
        layout.addStretch(2)
        layout.addWidget(self.title)
        layout.addLayout(row)
        layout.addWidget(self.library_button, 0, Qt.AlignmentFlag.AlignHCenter)
        layout.addStretch(3)
        self.set_model(None)

    def set_model(self, name: str | None) -> None:
        """Mention the model that will answer."""
        model = f"{name} is ready on this machine." if name else "Choose a model above to start."
        self.hint.setText(HINT.format(model=model))
