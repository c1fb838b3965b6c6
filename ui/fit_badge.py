"""The coloured badge that says whether a model fits this machine (GPU / partial / CPU only / does not fit)."""

from __future__ import annotations

from PySide6.QtWidgets import QLabel, QWidget

COLOURS = {"gpu": "#2e7d32", "partial": "#b7791f", "cpu": "#1565c0", "no_fit": "#c62828"}


def fit_key(fit: object) -> str:
    """``gpu``, ``partial``, ``cpu`` or ``no_fit`` for a :class:`models.fit.FitClass` member."""
    return getattr(fit, "name", str(fit)).lower()


class FitBadge(QLabel):
    """Shows a fit estimate's class, with its summary on hover; empty until :meth:`set_fit` is called."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setText("…")
        self.setToolTip("Estimating…")

    def set_fit(self, result: object) -> None:
        """Show a :class:`models.fit.FitResult`."""
        fit = getattr(result, "fit")
        colour = COLOURS.get(fit_key(fit), "#666")
        self.setText(str(getattr(fit, "value", fit)))
        self.setToolTip(result.summary() if hasattr(result, "summary") else self.text())
        self.setStyleSheet(f"QLabel {{ color: white; background: {colour}; border-radius: 7px; padding: 1px 7px; }}")

    def set_unknown(self, reason: str) -> None:
        """No estimate could be made."""
        self.setText("unknown")
        self.setToolTip(reason)
        self.setStyleSheet("")
