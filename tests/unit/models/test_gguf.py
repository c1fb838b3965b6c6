import io

import pytest

from models.errors import ModelFileError
from models.gguf import ArraySummary, read_gguf, read_gguf_stream
from tests.helpers import starter_path, write_tiny_gguf


def test_reads_starter_header_and_checks_its_size():
    path = starter_path()
    info = read_gguf(path)
    assert info.architecture == "llama"
    assert info.context_length == 8192
    assert info.quantization == "Q4_1"
    assert info.chat_template and "<|im_start|>" in info.chat_template
    assert isinstance(info.metadata["tokenizer.ggml.tokens"], ArraySummary)
    assert 130e6 < info.parameter_count < 140e6  # SmolLM2-135M
    # The tensor-size table is right for every type the file uses: the data ends where the file ends.
    assert info.expected_size == path.stat().st_size


def test_truncated_model_is_refused_with_sizes(tmp_path):
    src = starter_path()
    cut = tmp_path / "cut.gguf"
    with src.open("rb") as f:
        cut.write_bytes(f.read(src.stat().st_size // 2))
    with pytest.raises(ModelFileError, match="truncated.*MiB.*Download or copy the file again"):
        read_gguf(cut)


def test_header_cut_short_is_refused(tmp_path):
    path = write_tiny_gguf(tmp_path / "t.gguf")
    short = tmp_path / "short.gguf"
    short.write_bytes(path.read_bytes()[:40])
    with pytest.raises(ModelFileError, match="truncated"):
        read_gguf(short)


def test_tiny_file_round_trip_and_data_truncation(tmp_path):
    info = read_gguf(write_tiny_gguf(tmp_path / "ok.gguf", n_tensors=2))
    assert info.architecture == "llama" and info.context_length == 2048 and info.parameter_count == 16
    with pytest.raises(ModelFileError, match="truncated"):
        read_gguf(write_tiny_gguf(tmp_path / "bad.gguf", n_tensors=2, truncate_data=True))


@pytest.mark.parametrize("content, message", [
    (b"PK\x03\x04 this is a zip", "not a GGUF model file"),
    (b"", "not a GGUF model file"),
    (b"GGUF" + (99).to_bytes(4, "little") + b"\0" * 16, "version 99"),
])
def test_not_gguf(tmp_path, content, message):
    path = tmp_path / "x.gguf"
    path.write_bytes(content)
    with pytest.raises(ModelFileError, match=message):
        read_gguf(path)


def test_missing_and_folder(tmp_path):
    with pytest.raises(ModelFileError, match="does not exist"):
        read_gguf(tmp_path / "nope.gguf")
    with pytest.raises(ModelFileError, match="folder"):
        read_gguf(tmp_path)


def test_stream_reader_reads_only_the_header():
    data = starter_path().read_bytes()[:4 << 20]
    info = read_gguf_stream(io.BytesIO(data), tensors=False)
    assert info.architecture == "llama"
