"""Route llama.cpp's own log lines into Python logging instead of the terminal.

llama.cpp is chatty on stderr; Ember keeps its lines at DEBUG level under ``inference.llama`` and remembers the last
error lines so a failed load can say what llama.cpp complained about.
"""

from __future__ import annotations

import collections
import ctypes
import logging
import threading

import llama_cpp

log = logging.getLogger("inference.llama")

_recent_errors: collections.deque[str] = collections.deque(maxlen=20)
_lock = threading.Lock()
_installed = False
_GGML_LOG_LEVEL_WARN = 2
_GGML_LOG_LEVEL_ERROR = 3


@llama_cpp.llama_log_callback
def _callback(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
    line = text.decode("utf-8", errors="replace").rstrip()
    if not line:
        return
    if level >= _GGML_LOG_LEVEL_WARN and level <= _GGML_LOG_LEVEL_ERROR:
        _recent_errors.append(line)
    log.debug("%s", line)


def install() -> None:
    """Install the callback and initialise llama.cpp's backends (once per process)."""
    global _installed
    with _lock:
        if _installed:
            return
        llama_cpp.llama_log_set(_callback, ctypes.c_void_p(0))
        llama_cpp.llama_backend_init()
        _installed = True


def take_recent_errors() -> list[str]:
    """The warning and error lines llama.cpp logged since the last call (and forget them)."""
    lines = list(_recent_errors)
    _recent_errors.clear()
    return lines
