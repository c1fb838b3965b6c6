"""Byte sizes as people read them: the one formatter every package and front end uses.

It lives in ``storage``, the lowest package, so ``models``, ``inference``, ``ui`` and ``app`` can all import it.
"""

from __future__ import annotations

KIB = 1 << 10
MIB = 1 << 20
GIB = 1 << 30
TIB = 1 << 40


def format_bytes(n: int | float | None) -> str:
    """``n`` bytes in binary units: ``512 B``, ``1.5 KiB``, ``98.2 MiB``, ``4.37 GiB``, ``1.20 TiB``.

    Under a GiB one decimal, from a GiB on two; ``?`` for an unknown size (None).
    """
    if n is None:
        return "?"
    value = float(n)
    if abs(value) < KIB:
        return f"{int(value)} B"
    for unit, size, decimals in (("KiB", KIB, 1), ("MiB", MIB, 1), ("GiB", GIB, 2)):
        if abs(round(value / size, decimals)) < 1024:  # 1023.99 MiB reads 1.00 GiB, never 1024.0 MiB
            return f"{value / size:.{decimals}f} {unit}"
    return f"{value / TIB:.2f} TiB"
