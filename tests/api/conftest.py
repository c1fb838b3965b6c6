"""One real API server per test module, on a free port, serving the real starter model."""

from __future__ import annotations

from typing import Iterator

import httpx
import pytest

from app.api import ApiServer
from app.core import Ember
from app.paths import Paths

TOKEN = "test-token-0123456789"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    """A started server with the starter model loaded; settings may be changed by a test and are restored."""
    home = tmp_path_factory.mktemp("ember-api-home")
    core = Ember.open(Paths(home))
    api = ApiServer(core, port=0, token=TOKEN).start()
    core.engine.load(core.model_spec("default")).wait(60)
    yield api
    api.stop()
    core.close()


@pytest.fixture
def settings(server: ApiServer) -> Iterator:
    """The live API settings of the module's server; changes are undone after the test."""
    saved = server.settings.model_dump()
    yield server.settings
    for key, value in saved.items():
        setattr(server.settings, key, value)


@pytest.fixture
def http(server: ApiServer) -> Iterator[httpx.Client]:
    """An httpx client with the token."""
    with httpx.Client(base_url=server.address, headers={"Authorization": f"Bearer {TOKEN}"},
                      timeout=30) as client:
        yield client
