"""The service surface every front end (``ui/``, the CLI, the API) uses: :class:`Core`, what a front end may touch
of the composition root (:class:`app.core.Ember` is one), and the services made once per process on it.

Front ends type their ``core`` argument as :class:`Core` and never import :mod:`app.core`; the import rules test
(tests/unit/test_import_rules.py) holds ``ui/`` to this surface.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from app.paths import Paths
from app.settings import Settings
from inference.engine import EngineService, ModelSpec
from models.library import Library, LibraryModel
from storage.conversations import ConversationStore

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import TypeVar

    from app.routing import Router

    T = TypeVar("T")


class Core(Protocol):
    """What a front end uses of the running Ember: its data paths, settings in force, stores and engine."""

    paths: Paths
    settings: Settings
    conversations: ConversationStore
    library: Library
    engine: EngineService

    def model_spec(self, name_or_path: str | None = None, *, draft: str | None = None,
                   lookup: bool = False) -> ModelSpec:
        """How to load a model by name, alias or path (default: the chat setting)."""
        ...

    def spec_for(self, model: LibraryModel, *, draft: str | None = None, lookup: bool = False) -> ModelSpec:
        """The load spec of a library model under the current engine and speculative settings."""
        ...

    def shared(self, key: str, make: "Callable[[Core], T]") -> "T":
        """The process's one ``key`` service, made by ``make(core)`` on first use and closed with the core."""
        ...


def router_of(core: Core) -> "Router":
    """The router between the small and the large tier: one per process, made on first use."""
    from app.routing import Router

    return core.shared("router", Router)
