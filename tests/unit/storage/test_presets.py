import pytest

from storage.database import open_database
from storage.errors import NotFoundError
from storage.presets import PresetError, PresetStore


@pytest.fixture()
def presets(tmp_path):
    return PresetStore(open_database(tmp_path / "ember.db"))


def test_save_list_edit_rename_delete(presets):
    presets.save("pirate", "Talk like a pirate.")
    presets.save("  Brief   answers ", "Answer in one sentence.")
    assert [p.name for p in presets.list()] == ["Brief answers", "pirate"]
    first = presets.get("pirate")
    edited = presets.save("pirate", "Talk like a pirate, matey.")
    assert edited.prompt == "Talk like a pirate, matey." and edited.created == first.created
    renamed = presets.save("Pirate", "Arr.", previous="pirate")
    assert renamed.created == first.created
    assert [p.name for p in presets.list()] == ["Brief answers", "Pirate"]
    presets.delete("Pirate")
    assert [p.name for p in presets.list()] == ["Brief answers"]


def test_bad_names_and_missing_presets_are_clear_errors(presets):
    presets.save("a", "x")
    presets.save("b", "y")
    with pytest.raises(PresetError, match="needs a name"):
        presets.save("   ", "x")
    with pytest.raises(PresetError, match="already a preset"):
        presets.save("b", "z", previous="a")
    assert presets.get("a").prompt == "x" and presets.get("b").prompt == "y", "a refused rename changes nothing"
    with pytest.raises(NotFoundError, match="presets: a, b"):
        presets.get("nope")
    with pytest.raises(NotFoundError):
        presets.delete("nope")
