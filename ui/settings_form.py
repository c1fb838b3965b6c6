"""Editors generated from a pydantic settings model: one row per field, bounds and help from its declaration."""

from __future__ import annotations

import types
import typing
from typing import Any, Literal

import annotated_types as at
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QLabel, QLineEdit,
                               QPlainTextEdit, QSpinBox, QVBoxLayout, QWidget)

INT_LIMIT = 2**31 - 1

# Readable names for fields whose identifiers are terse; everything else is the identifier in words.
LABELS = {
    "n_ctx": "Context length", "n_batch": "Batch size", "n_threads": "CPU threads", "n_gpu_layers": "GPU layers",
    "flash_attn": "Flash attention", "top_p": "Top P", "top_k": "Top K", "min_p": "Min P",
    "repeat_last_n": "Repeat window", "max_tokens": "Max reply tokens", "stop": "Stop strings",
    "model": "Default model", "stream_flush_interval": "Save interval (s)",
    "dry_multiplier": "DRY multiplier", "stop_loops": "Stop looping replies",
}
NONE_TEXT = {"seed": "Random"}


def label_for(name: str) -> str:
    """The label shown for a field."""
    return LABELS.get(name) or name.replace("_", " ").capitalize()


def _unwrap(annotation: Any) -> tuple[Any, bool]:
    """``(type, optional)`` of a field annotation."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return args[0], len(args) < len(typing.get_args(annotation))
    return annotation, False


def _bounds(info: FieldInfo) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for meta in info.metadata:
        for attr in ("ge", "gt", "le", "lt", "max_length", "min_length"):
            if isinstance(meta, (at.Ge, at.Gt, at.Le, at.Lt, at.MaxLen, at.MinLen)) and hasattr(meta, attr):
                found[attr] = getattr(meta, attr)
    return found


class SettingsForm(QWidget):
    """A form for some fields of one pydantic model. :meth:`values` gives a dict for ``model_validate``."""

    def __init__(self, model: type[BaseModel], values: BaseModel, *, fields: list[str] | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = model
        self.editors: dict[str, QWidget] = {}
        self._kinds: dict[str, tuple[Any, bool]] = {}
        layout = QFormLayout(self)
        layout.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        for name in fields or list(model.model_fields):
            info = model.model_fields[name]
            kind, optional = _unwrap(info.annotation)
            if isinstance(kind, type) and issubclass(kind, BaseModel):
                continue
            editor = self._editor(name, kind, optional, info)
            editor.setToolTip(info.description or "")
            editor.setAccessibleName(label_for(name))
            self.editors[name] = editor
            self._kinds[name] = (kind, optional)
            self._set(name, getattr(values, name))
            label = QLabel(label_for(name))
            label.setToolTip(info.description or "")
            cell = QWidget()
            column = QVBoxLayout(cell)
            column.setContentsMargins(0, 0, 0, 4)
            column.setSpacing(1)
            column.addWidget(editor)
            if info.description:
                hint = QLabel(info.description)
                hint.setObjectName("hint")
                hint.setWordWrap(True)
                column.addWidget(hint)
            layout.addRow(label, cell)

    def _editor(self, name: str, kind: Any, optional: bool, info: FieldInfo) -> QWidget:
        b = _bounds(info)
        if typing.get_origin(kind) is Literal:
            combo = QComboBox()
            combo.addItems([str(a) for a in typing.get_args(kind)])
            return combo
        if typing.get_origin(kind) is dict:
            text = QPlainTextEdit()
            text.setFixedHeight(70)
            text.setPlaceholderText("name = value, one per line")
            return text
        if kind is bool:
            if optional:
                combo = QComboBox()
                combo.addItems(["Auto", "On", "Off"])
                return combo
            return QCheckBox()
        if kind is int:
            spin = QSpinBox()
            low = b.get("ge", b["gt"] + 1 if "gt" in b else -INT_LIMIT)
            high = b.get("le", b["lt"] - 1 if "lt" in b else INT_LIMIT)
            if optional:
                low -= 1
                spin.setSpecialValueText(NONE_TEXT.get(name, "Auto"))
            elif low == -1:
                spin.setSpecialValueText("Auto")
            spin.setRange(max(low, -INT_LIMIT), min(high, INT_LIMIT))
            return spin
        if kind is float:
            spin = QDoubleSpinBox()
            spin.setDecimals(2)
            spin.setSingleStep(0.05)
            low = b.get("ge", b["gt"] + 0.01 if "gt" in b else -1e9)
            spin.setRange(low, b.get("le", b["lt"] - 0.01 if "lt" in b else 1e9))
            return spin
        if typing.get_origin(kind) is list or (kind is str and (b.get("max_length") or 0) > 1000):
            text = QPlainTextEdit()
            text.setFixedHeight(70)
            if typing.get_origin(kind) is list:
                text.setPlaceholderText("one per line")
            return text
        line = QLineEdit()
        if b.get("max_length"):
            line.setMaxLength(min(b["max_length"], INT_LIMIT))
        return line

    def _set(self, name: str, value: Any) -> None:
        editor = self.editors[name]
        kind, optional = self._kinds[name]
        if typing.get_origin(kind) is Literal:
            editor.setCurrentText(str(value))
        elif typing.get_origin(kind) is dict:
            editor.setPlainText("\n".join(f"{k} = {v}" for k, v in (value or {}).items()))
        elif isinstance(editor, QComboBox):
            editor.setCurrentIndex(0 if value is None else (1 if value else 2))
        elif isinstance(editor, QCheckBox):
            editor.setChecked(bool(value))
        elif isinstance(editor, (QSpinBox, QDoubleSpinBox)):
            editor.setValue(editor.minimum() if value is None else value)
        elif isinstance(editor, QPlainTextEdit):
            editor.setPlainText("\n".join(value) if isinstance(value, list) else str(value or ""))
        elif isinstance(editor, QLineEdit):
            editor.setText("" if value is None else str(value))

    def values(self) -> dict[str, Any]:
        """The edited values, by field name (not yet validated)."""
        out: dict[str, Any] = {}
        for name, editor in self.editors.items():
            kind, optional = self._kinds[name]
            if typing.get_origin(kind) is Literal:
                out[name] = editor.currentText()
            elif typing.get_origin(kind) is dict:
                pairs = [line.partition("=") for line in editor.toPlainText().splitlines() if line.strip()]
                out[name] = {k.strip(): v.strip() for k, _, v in pairs}
            elif isinstance(editor, QComboBox):
                out[name] = [None, True, False][editor.currentIndex()]
            elif isinstance(editor, QCheckBox):
                out[name] = editor.isChecked()
            elif isinstance(editor, (QSpinBox, QDoubleSpinBox)):
                value = editor.value()
                out[name] = None if optional and value == editor.minimum() else value
            elif isinstance(editor, QPlainTextEdit):
                text = editor.toPlainText()
                out[name] = [s for s in text.split("\n") if s] if typing.get_origin(kind) is list else text
            elif isinstance(editor, QLineEdit):
                out[name] = editor.text() or (None if optional else "")
        return out
