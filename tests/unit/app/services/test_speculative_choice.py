"""Which drafter a chat gets: flags first, then the per-model setting, then the default mode."""

from pathlib import Path

import pytest

from app.core import Ember
from app.settings import SettingsError
from inference.requantize import requantized_copy


@pytest.fixture
def core():
    c = Ember.open()
    yield c
    c.close()


def test_default_is_plain_decoding(core):
    assert core.model_spec().speculative is None


def test_lookup_flag(core):
    spec = core.model_spec(lookup=True)
    assert spec.speculative.mode == "lookup" and spec.speculative.max_draft == core.settings.speculative.max_draft


def test_a_model_cannot_draft_for_itself(core):
    with pytest.raises(SettingsError, match="cannot draft for itself"):
        core.model_spec(draft="default")
    with pytest.raises(SettingsError, match="not both"):
        core.model_spec(draft="default", lookup=True)


def test_settings_choose_the_drafter_per_model(core, tmp_path: Path):
    target = core.library.add(requantized_copy(core.library.get("default").path, tmp_path, "q8_0"), name="big")
    core.settings.speculative.per_model = {"big": "default", "default": "lookup"}
    spec = core.model_spec("big")
    assert spec.speculative.mode == "draft" and spec.speculative.draft_name == "smollm2-135m-instruct"
    assert spec.path == target.path
    assert core.model_spec("default").speculative.mode == "lookup"
    core.settings.speculative.per_model = {}
    core.settings.speculative.mode = "draft"
    with pytest.raises(SettingsError, match="no draft model is set"):
        core.model_spec("big")
