import pytest

from models.errors import ModelFileError, ModelNotFoundError
from models.library import Library, slug
from models.starter import STARTER_NAME
from storage.database import open_database
from tests.helpers import starter_path, write_tiny_gguf


@pytest.fixture()
def library(tmp_path):
    return Library(open_database(tmp_path / "ember.db"))


def test_starter_registered_once_with_alias(library):
    first = library.ensure_starter()
    assert first is not None and first.name == STARTER_NAME and first.path == starter_path().resolve()
    assert library.ensure_starter() == first
    assert library.get("default").name == STARTER_NAME
    assert first.quantization == "Q4_1" and first.chat_template and first.context_length == 8192


def test_resolve_by_name_alias_and_path(library, tmp_path):
    library.ensure_starter()
    assert library.resolve("default").name == STARTER_NAME
    tiny = write_tiny_gguf(tmp_path / "Tiny-Model.Q8_0.gguf")
    model = library.resolve(str(tiny))
    assert model.path == tiny and model.architecture == "llama"
    with pytest.raises(ModelNotFoundError, match="installed: smollm2-135m-instruct"):
        library.resolve("no-such-model")


def test_resolve_bad_path_is_model_file_error(library, tmp_path):
    bad = tmp_path / "bad.gguf"
    bad.write_text("hello")
    with pytest.raises(ModelFileError, match="not a GGUF"):
        library.resolve(str(bad))


def test_add_refuses_truncated_and_touch_records_use(library, tmp_path):
    with pytest.raises(ModelFileError):
        library.add(write_tiny_gguf(tmp_path / "t.gguf", truncate_data=True))
    model = library.add(write_tiny_gguf(tmp_path / "Good File.gguf"))
    assert model.name == "good-file" and model.last_used is None
    library.touch(model.name)
    assert library.get(model.name).last_used is not None


def test_slug():
    assert slug("SmolLM2-135M-Instruct.Q4_1") == "smollm2-135m-instruct.q4-1"
    assert slug("***") == "model"
