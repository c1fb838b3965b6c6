"""Loads and unloads models on the engine thread and reports progress as signals."""

from __future__ import annotations

import itertools
import logging
from typing import Any, Callable

from PySide6.QtCore import QObject, Signal

from inference.engine import EngineService, JobHandle, ModelSpec
from inference.errors import LoadCancelled
from inference.events import Failed, Finished, LoadProgress
from storage.errors import EmberError, user_message
from ui.background import Background
from ui.engine_adapter import EventRelay

log = logging.getLogger(__name__)


class ModelLoader(QObject):
    """The one place the window asks the engine for a model.

    Signals: ``progress(fraction)``, ``loaded(name)``, ``unloaded()``, ``cancelled()``, ``failed(message)``,
    ``busyChanged(busy)``, ``draftsFound(options)`` (the answer to :meth:`find_drafts`).
    """

    progress = Signal(float)
    loaded = Signal(str)
    unloaded = Signal()
    cancelled = Signal()
    failed = Signal(str)
    busyChanged = Signal(bool)
    draftsFound = Signal(object)

    def __init__(self, engine: EngineService, background: Background, spec_for: Callable[[str], ModelSpec],
                 parent: QObject | None = None, *, drafts_for: Callable[[str], Any] | None = None) -> None:
        super().__init__(parent)
        self._engine = engine
        self._spec_for = spec_for
        self._drafts_for = drafts_for
        self._drafts_request = 0
        self._background = background
        self._relay = EventRelay(self._on_event, self)
        self._tags = itertools.count(1)
        self._tag = 0
        self._handle: JobHandle | None = None
        self._spec: ModelSpec | None = None

    @property
    def busy(self) -> bool:
        """True while a load is running."""
        return self._handle is not None

    @property
    def loaded_name(self) -> str | None:
        """The name of the loaded model, or None."""
        spec = self._engine.loaded
        return spec.name if spec else None

    def load_name(self, name: str) -> None:
        """Load a library model by name, alias or path; an unusable name or file is reported by ``failed``."""
        try:
            spec = self._spec_for(name)
        except EmberError as exc:
            self.failed.emit(user_message(exc))
            return
        self.load(spec)

    def load(self, spec: ModelSpec) -> None:
        """Start loading ``spec`` (replacing the loaded model); progress and the outcome arrive as signals."""
        if self._handle is not None:
            self._handle.cancel()
        self._tag = next(self._tags)
        self._spec = spec
        self._handle = self._engine.load(spec, on_event=self._relay.callback(self._tag))
        self.busyChanged.emit(True)
        self.progress.emit(0.0)

    def find_drafts(self, name: str) -> None:
        """Look for the library models that can draft for ``name`` (vocabularies are read off the GUI thread);
        the newest request's answer arrives as ``draftsFound``. An unreadable model is logged and ignored."""
        if self._drafts_for is None or not name:
            return
        self._drafts_request += 1
        request, drafts_for = self._drafts_request, self._drafts_for

        def done(options: Any) -> None:
            if request == self._drafts_request:
                self.draftsFound.emit(options)

        self._background.run(lambda: drafts_for(name), done,
                             lambda message: log.info("no draft choice for %s: %s", name, message))

    def cancel(self) -> None:
        """Stop the running load at its next progress step."""
        if self._handle is not None:
            self._handle.cancel()

    def unload(self) -> None:
        """Free the loaded model (waited for off the GUI thread)."""
        engine = self._engine
        self._background.run(lambda: engine.unload().wait(), lambda _: self.unloaded.emit(), self.failed.emit)

    def _on_event(self, tag: int, event: Any) -> None:
        if tag != self._tag:
            return
        if isinstance(event, LoadProgress):
            self.progress.emit(event.fraction)
            return
        if not isinstance(event, (Finished, Failed)):
            return
        self._handle = None
        self.busyChanged.emit(False)
        if isinstance(event, Finished):
            assert self._spec is not None
            self.loaded.emit(self._spec.name)
        elif isinstance(event.error, LoadCancelled):
            self.cancelled.emit()
        else:
            self.failed.emit(user_message(event.error, already_logged=True))  # a bug: by the engine
