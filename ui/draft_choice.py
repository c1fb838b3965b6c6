"""The draft choice next to the model picker: off, prompt lookup, or a library model that can draft for it."""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QWidget

from app.services.surface import Core
from app.services.speculative_choice import compatible_library_drafts
from storage.errors import EmberError

OFF, LOOKUP = "off", "lookup"


@dataclass(frozen=True)
class DraftOptions:
    """What the draft choice offers for one model: compatible library drafts and the settings' default."""

    model: str
    drafts: tuple[str, ...]
    default: str  # "off", "lookup" or a draft model name


def draft_options(core: Core, name: str) -> DraftOptions:
    """The draft options of model ``name`` (reads vocabularies: run it off the GUI thread).

    Raises:
        ModelNotFoundError, ModelFileError: the model cannot be found or read.
    """
    target = core.library.resolve(name)
    drafts = tuple(compatible_library_drafts(core.library, target))
    try:
        spec = core.spec_for(target).speculative
    except EmberError:  # the settings name a draft that cannot be used: offer the choice anyway
        spec = None
    if spec is None:
        default = OFF
    elif spec.mode == "lookup":
        default = LOOKUP
    else:
        default = spec.draft_name if spec.draft_name in drafts else OFF
    return DraftOptions(model=name, drafts=drafts, default=default)


class DraftChoice(QWidget):
    """Signal ``changed(choice)``: the user picked ``off``, ``lookup`` or a draft model name."""

    changed = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.combo = QComboBox()
        self.combo.setAccessibleName("Speculative decoding")
        self.combo.setMinimumWidth(200)
        self.combo.setToolTip("Speculative decoding: a small model with the same tokenizer (or text from the "
                              "conversation) proposes tokens that the model checks in one batch. Only compatible "
                              "library models are listed.")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(QLabel("Draft"))
        layout.addWidget(self.combo)
        self.model: str | None = None
        self.set_checking()
        self.combo.activated.connect(lambda _: self.changed.emit(self.current()))

    def current(self) -> str:
        """``off``, ``lookup`` or the chosen draft model's name."""
        return self.combo.currentData() or OFF

    def choices(self) -> list[str]:
        """Every choice offered, in order."""
        return [self.combo.itemData(i) for i in range(self.combo.count())]

    def set_checking(self) -> None:
        """Offer only off and lookup while the library is checked for compatible drafts."""
        self.model = None
        self.combo.clear()
        self.combo.addItem("Off", OFF)
        self.combo.addItem("Prompt lookup", LOOKUP)

    def set_options(self, options: DraftOptions) -> None:
        """Offer off, lookup and the compatible drafts of ``options.model``; select the settings' default."""
        self.model = options.model
        self.combo.clear()
        self.combo.addItem("Off", OFF)
        self.combo.addItem("Prompt lookup", LOOKUP)
        for name in options.drafts:
            self.combo.addItem(f"Draft: {name}", name)
        self.combo.setCurrentIndex(max(self.combo.findData(options.default), 0))

    def select(self, choice: str) -> None:
        """Select a choice (as if the user picked it)."""
        index = self.combo.findData(choice)
        if index < 0:
            raise ValueError(f"{choice!r} is not offered")
        self.combo.setCurrentIndex(index)
        self.changed.emit(choice)
