"""The composition root: the one place that reads settings and wires storage, the library and the engine."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, TypeVar

import sqlite_utils

from app.logs import configure_logging
from app.paths import Paths
from app.settings import Settings, load_settings
from inference.engine import EngineService, ModelSpec
from inference.kv_state import StateCache
from inference.llama_model import ContextParams
from models.library import Library, LibraryModel
from storage.conversations import ConversationStore
from storage.database import close_database, open_database

T = TypeVar("T")
log = logging.getLogger(__name__)


@dataclass
class Ember:
    """Everything a front end (CLI, desktop, API) needs, built once per process."""

    paths: Paths
    settings: Settings
    db: sqlite_utils.Database
    conversations: ConversationStore
    library: Library
    engine: EngineService
    _shared: dict[str, Any] = field(default_factory=dict, init=False, repr=False)
    _shared_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    @classmethod
    def open(cls, paths: Paths | None = None, *, settings: Settings | None = None) -> "Ember":
        """Open the data root (creating it on first start), apply migrations, register the starter model.

        Raises:
            EmberError: the settings file or the database cannot be used.
        """
        paths = (paths or Paths.from_env()).ensure()
        configure_logging(paths.logs)
        settings = settings or load_settings(paths.settings)
        db = open_database(paths.database)
        library = Library(db)
        starter = library.ensure_starter()
        if starter is None:
            log.info("starter model package is not installed; only library models and paths can be used")
        e = settings.engine
        states = StateCache(paths.cache / "kv", ram_budget=e.state_cache_ram_mb << 20,
                            disk_budget=e.state_cache_disk_mb << 20)
        return cls(paths=paths, settings=settings, db=db, conversations=ConversationStore(db), library=library,
                   engine=EngineService(states=states, parallel=settings.api.parallel,
                                        prefill_chunk=e.prefill_chunk))

    def model_spec(self, name_or_path: str | None = None, *, draft: str | None = None,
                   lookup: bool = False) -> ModelSpec:
        """How to load a model: resolved by name, alias or path (default: the chat setting), with the engine
        settings applied; ``draft`` (a draft model) or ``lookup`` override the speculative settings.

        Raises:
            ModelNotFoundError, ModelFileError: unknown name or unusable file.
        """
        model = self.library.resolve(name_or_path or self.settings.chat.model)
        return self.spec_for(model, draft=draft, lookup=lookup)

    def spec_for(self, model: LibraryModel, *, draft: str | None = None, lookup: bool = False) -> ModelSpec:
        """The load spec of a library model under the current engine and speculative settings."""
        from app.services.speculative_choice import speculative_config

        e = self.settings.engine
        params = ContextParams(n_ctx=e.n_ctx, n_batch=e.n_batch, n_threads=e.n_threads,
                               n_gpu_layers=e.n_gpu_layers, flash_attn=e.flash_attn, adapt_threads=e.adapt_threads)
        spec = speculative_config(self.library, self.settings.speculative, model, draft=draft, lookup=lookup)
        return ModelSpec(name=model.name, path=model.path, params=params, speculative=spec)

    def shared(self, key: str, make: Callable[["Ember"], T]) -> T:
        """The process's one ``key`` service (the router, ...), made by ``make(self)`` on first use; the API's
        threads and the GUI may ask first at once and get the same one. Closed (``close()``, newest first) with
        the core."""
        with self._shared_lock:
            if key not in self._shared:
                self._shared[key] = make(self)
            return self._shared[key]

    def close(self) -> None:
        """Stop the engine and close the database."""
        for service in reversed(list(self._shared.values())):
            close = getattr(service, "close", None)
            if close is not None:
                close()
        self.engine.shutdown()
        close_database(self.db)
