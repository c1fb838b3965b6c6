"""The Library page: installed models (import, delete, fit) and Hub search with downloads."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable

from PySide6.QtCore import Signal
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QFileDialog, QLabel, QTabWidget, QVBoxLayout, QWidget

from app.services.surface import Core
from models.fit import estimate_fit, library_fit, model_shape
from ui import dialogs
from ui.background import Background
from ui.hub_search import HubSearch
from storage.sizes import format_bytes
from ui.installed_models import InstalledModels

log = logging.getLogger(__name__)


class LibraryPage(QWidget):
    """Signals: ``modelsChanged()``, ``useRequested(name)``, ``downloadRequested(repo_id, model, commit)``,
    ``error(message)``, ``notice(message)``.

    Args:
        core: the composition root (library, paths, settings).
        background: where disk and network work runs.
        hub: makes a Hub client (``app.services.models.hub_client``); None hides Hub search.
        machine: this machine's free memory for fit estimates (``app.services.models.machine``).
    """

    modelsChanged = Signal()
    useRequested = Signal(str)
    downloadRequested = Signal(str, object, str)
    error = Signal(str)
    notice = Signal(str)

    def __init__(self, core: Core, background: Background, *, hub: Callable[[], Any] | None = None,
                 machine: Callable[[], Any] | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._core = core
        self._background = background
        self._hub_factory = hub
        self._machine = machine
        self.setAcceptDrops(True)
        self.title = QLabel("Library")
        self.title.setObjectName("emptyTitle")
        self.installed = InstalledModels()
        self.hub = HubSearch()
        self.tabs = QTabWidget()
        self.tabs.addTab(self.installed, "Installed")
        if hub is not None:
            self.tabs.addTab(self.hub, "Discover on Hugging Face")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(24, 16, 24, 16)
        layout.addWidget(self.title)
        layout.addWidget(self.tabs, 1)
        self.installed.importRequested.connect(self.choose_files)
        self.installed.deleteRequested.connect(self.delete)
        self.installed.useRequested.connect(self.useRequested.emit)
        self.hub.searchRequested.connect(self.search)
        self.hub.repoSelected.connect(self.show_repo)
        self.hub.downloadRequested.connect(self.downloadRequested.emit)
        self.refresh()

    # -- installed -----------------------------------------------------------------------------------------------

    def refresh(self) -> None:
        """Reload the installed models, then estimate their fit in the background."""
        models = self._core.library.list()
        self.installed.set_models(models)
        if self._machine is None:
            return
        settings = self._core.settings.engine
        machine_fn = self._machine
        for m in models:
            estimate = lambda m=m: library_fit(m, machine_fn(), ctx=settings.n_ctx,  # noqa: E731
                                               n_batch=settings.n_batch)
            self._background.run(estimate, lambda r, name=m.name: self.installed.set_fit(name, r),
                                 lambda msg, name=m.name: self.installed.badges.get(name) and
                                 self.installed.badges[name].set_unknown(msg))

    def choose_files(self) -> None:
        """Pick .gguf files with a file dialog and import them."""
        paths, _ = QFileDialog.getOpenFileNames(self, "Import models", "", "GGUF models (*.gguf)")
        self.import_files([Path(p) for p in paths])

    def import_files(self, paths: list[Path]) -> None:
        """Check and catalogue GGUF files (in place) off the GUI thread; a bad file is refused with a message."""
        library = self._core.library
        for path in paths:
            self._background.run(lambda p=path: library.import_file(p), self._imported, self.error.emit)

    def _imported(self, model: Any) -> None:
        self.refresh()
        self.installed.select(model.name)
        self.notice.emit(f"Added {model.name} ({model.quantization or '?'}, {format_bytes(model.size)}).")
        self.modelsChanged.emit()

    def delete(self, name: str) -> bool:
        """Delete a model after confirming what it frees; False when the user said no."""
        plan = self._core.library.plan_delete(name, library_dir=self._core.paths.models)
        text = f"Remove {name} from the library?"
        if plan.delete:
            text += f"\n\nThis deletes {len(plan.delete)} file(s) and frees {format_bytes(plan.freed)}."
        if plan.keep:
            text += "\n\nThe file outside Ember's folder stays on disk:\n" + "\n".join(str(p) for p in plan.keep)
        if not dialogs.confirm(self, "Delete model", text, action="Delete"):
            return False
        library = self._core.library
        self._background.run(lambda: library.delete(plan), lambda _: self._deleted(name, plan.freed),
                             self.error.emit)
        return True

    def _deleted(self, name: str, freed: int) -> None:
        self.refresh()
        self.notice.emit(f"Removed {name}" + (f"; freed {format_bytes(freed)}." if freed else "."))
        self.modelsChanged.emit()

    # -- hub -----------------------------------------------------------------------------------------------------

    def search(self, query: str) -> None:
        """Search the Hub off the GUI thread."""
        if self._hub_factory is None:
            return
        factory = self._hub_factory
        self._background.run(lambda: factory().search(query), self.hub.set_results, self.hub.set_error)

    def show_repo(self, repo_id: str) -> None:
        """List a repository's GGUF models, then estimate each one's fit from its header."""
        if self._hub_factory is None:
            return
        factory = self._hub_factory
        estimate = self._machine is not None
        self.hub.status.setText(f"Listing {repo_id}…")

        def listed(repo: Any) -> None:
            self.hub.set_files(repo)
            for m in repo.models if estimate else []:
                self._background.run(lambda m=m: self._remote_fit(factory, repo, m),
                                     lambda r, name=m.name: self.hub.set_fit(name, r),
                                     lambda msg, name=m.name: self.hub.set_fit_unknown(name, msg))

        self._background.run(lambda: factory().files(repo_id), listed, self.hub.set_error)

    def _remote_fit(self, factory: Callable[[], Any], repo: Any, model: Any) -> Any:
        info, _ = factory().read_header(repo.repo_id, model.first.path, revision=repo.commit)
        shape = model_shape(info, weights=model.size or 0, name=model.name)
        settings = self._core.settings.engine
        assert self._machine is not None
        return estimate_fit(shape, self._machine(), ctx=settings.n_ctx, n_batch=settings.n_batch)

    # -- drag and drop -------------------------------------------------------------------------------------------

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802 - Qt override
        """Accept dragged .gguf files."""
        if any(u.toLocalFile().endswith(".gguf") for u in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802 - Qt override
        """Import dropped .gguf files."""
        paths = [Path(u.toLocalFile()) for u in event.mimeData().urls() if u.toLocalFile().endswith(".gguf")]
        if paths:
            event.acceptProposedAction()
            self.import_files(paths)
