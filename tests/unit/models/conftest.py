"""Fixtures for the model library tests: a fake Hub holding a few small real GGUF repositories."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # tests/: the fake Hub and GGUF writer

from fakehub import FakeHub, FakeRepo, fake_hub  # noqa: E402,F401  (fixture)
from model_repos import GATED, GATED_FILE, TINY, TINY_FILE, model_bytes  # noqa: E402

from models.hub import HubClient  # noqa: E402
from storage.database import close_database, open_database  # noqa: E402

@pytest.fixture
def hub_repos(fake_hub: FakeHub) -> FakeHub:  # noqa: F811
    """The fake Hub with: a tiny single-file repo (plus a split Q8_0 model), a gated repo, some others."""
    fake_hub.add(FakeRepo(TINY, {
        TINY_FILE: model_bytes(1),
        "tiny.Q8_0-00001-of-00002.gguf": model_bytes(2, 1 << 20),
        "tiny.Q8_0-00002-of-00002.gguf": model_bytes(3, 1 << 20),
        "README.md": b"# tiny\n",
    }, downloads=500, likes=3))
    fake_hub.add(FakeRepo(GATED, {GATED_FILE: model_bytes(4, 1 << 16)}, downloads=50, likes=30,
                          gated=True))
    for i in range(4):
        fake_hub.add(FakeRepo(f"someone/other{i}-GGUF", {f"other{i}.F16.gguf": model_bytes(10 + i, 4096)},
                              downloads=i, likes=10 - i))
    return fake_hub


@pytest.fixture
def client(hub_repos: FakeHub) -> HubClient:
    return HubClient(endpoint=hub_repos.endpoint)


@pytest.fixture
def db(tmp_path: Path):
    database = open_database(tmp_path / "ember.db")
    yield database
    close_database(database)
