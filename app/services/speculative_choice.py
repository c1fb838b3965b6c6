"""Which drafter a model gets: the ``--draft``/``--lookup`` flags, else the speculative settings."""

from __future__ import annotations

from app.settings import SettingsError, SpeculativeSettings
from inference.draft_compat import compatible_drafts
from inference.spec_runtime import SpeculativeConfig
from models.library import Library, LibraryModel


def speculative_config(library: Library, settings: SpeculativeSettings, target: LibraryModel, *,
                       draft: str | None = None, lookup: bool = False) -> SpeculativeConfig | None:
    """The speculative setup for ``target``: ``lookup`` or ``draft`` when given, else the per-model setting, else
    the default mode. None means plain decoding.

    Raises:
        SettingsError: both flags given, the draft is the target itself, or mode ``draft`` without a draft model.
        ModelNotFoundError, ModelFileError: the draft model cannot be found or read.
    """
    if draft and lookup:
        raise SettingsError("Choose either a draft model or prompt lookup, not both.")
    if lookup:
        choice = "lookup"
    elif draft:
        choice = draft
    else:
        choice = settings.per_model.get(target.name)
        if choice is None:
            for alias in target.aliases:
                choice = settings.per_model.get(alias, choice)
        if choice is None:
            choice = settings.mode
            if choice == "draft":
                if not settings.draft_model:
                    raise SettingsError("Speculative mode is 'draft' but no draft model is set: set "
                                        "speculative.draft_model or use --draft MODEL.")
                choice = settings.draft_model
    if choice == "off":
        return None
    if choice == "lookup":
        return SpeculativeConfig("lookup", adaptive=settings.adaptive, max_draft=settings.max_draft)
    model = library.resolve(choice)
    if model.path.resolve() == target.path.resolve():
        raise SettingsError(f"{model.name} cannot draft for itself: choose a smaller model with the same "
                            "tokenizer, or --lookup.")
    return SpeculativeConfig("draft", draft_path=model.path, draft_name=model.name, adaptive=settings.adaptive,
                             max_draft=settings.max_draft)


def compatible_library_drafts(library: Library, target: LibraryModel) -> list[str]:
    """Names of library models that can draft for ``target`` (same vocabulary, smaller file)."""
    return compatible_drafts(target.path, [(m.name, m.path) for m in library.list()])
