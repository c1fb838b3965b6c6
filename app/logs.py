"""Logging: Ember's log file under the data root; the terminal only shows what front ends print."""

from __future__ import annotations

import logging
import logging.handlers
from pathlib import Path

LOG_FILE = "ember.log"
_FORMAT = "%(asctime)s %(levelname)s %(threadName)s %(name)s: %(message)s"


def configure_logging(folder: Path, *, level: int = logging.INFO) -> Path:
    """Send Ember's log records to a rotating file in ``folder``; returns the file's path.

    A process has one Ember log file: configuring another folder replaces the previous handler.
    """
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOG_FILE
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "ember_log", False):
            if Path(handler.baseFilename) == path:
                return path
            root.removeHandler(handler)
            handler.close()
    handler = logging.handlers.RotatingFileHandler(path, maxBytes=5 << 20, backupCount=3, encoding="utf-8")
    handler.ember_log = True  # type: ignore[attr-defined]
    handler.setFormatter(logging.Formatter(_FORMAT))
    handler.setLevel(level)
    root.addHandler(handler)
    if root.level == logging.NOTSET or root.level > level:
        root.setLevel(level)
    return path
