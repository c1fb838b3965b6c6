"""Ember's icon, drawn with QPainter at every size (crisp on high-DPI screens, no image files to ship)."""

from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QIcon, QLinearGradient, QPainter, QPainterPath, QPixmap, QRadialGradient

SIZES = (16, 24, 32, 48, 64, 128, 256)


def _flame(size: float) -> QPainterPath:
    s = size
    path = QPainterPath(QPointF(0.50 * s, 0.14 * s))
    path.cubicTo(QPointF(0.58 * s, 0.32 * s), QPointF(0.78 * s, 0.40 * s), QPointF(0.76 * s, 0.60 * s))
    path.cubicTo(QPointF(0.75 * s, 0.76 * s), QPointF(0.64 * s, 0.86 * s), QPointF(0.50 * s, 0.86 * s))
    path.cubicTo(QPointF(0.35 * s, 0.86 * s), QPointF(0.24 * s, 0.75 * s), QPointF(0.25 * s, 0.60 * s))
    path.cubicTo(QPointF(0.26 * s, 0.48 * s), QPointF(0.34 * s, 0.42 * s), QPointF(0.38 * s, 0.34 * s))
    path.cubicTo(QPointF(0.40 * s, 0.44 * s), QPointF(0.44 * s, 0.48 * s), QPointF(0.47 * s, 0.50 * s))
    path.cubicTo(QPointF(0.46 * s, 0.38 * s), QPointF(0.47 * s, 0.26 * s), QPointF(0.50 * s, 0.14 * s))
    return path


def pixmap(size: int) -> QPixmap:
    """The icon as a square pixmap of ``size`` pixels."""
    pm = QPixmap(size, size)
    pm.fill(Qt.GlobalColor.transparent)
    p = QPainter(pm)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    back = QLinearGradient(0, 0, 0, size)
    back.setColorAt(0, QColor("#3a2a4a"))
    back.setColorAt(1, QColor("#1d1626"))
    p.setPen(Qt.PenStyle.NoPen)
    p.setBrush(back)
    radius = size * 0.22
    p.drawRoundedRect(QRectF(0, 0, size, size), radius, radius)
    glow = QRadialGradient(QPointF(size * 0.5, size * 0.7), size * 0.45)
    glow.setColorAt(0, QColor("#ffd166"))
    glow.setColorAt(0.55, QColor("#f77f00"))
    glow.setColorAt(1, QColor("#d62828"))
    p.setBrush(glow)
    p.drawPath(_flame(size))
    p.end()
    return pm


def app_icon() -> QIcon:
    """The application and tray icon."""
    icon = QIcon()
    for size in SIZES:
        icon.addPixmap(pixmap(size))
    return icon
