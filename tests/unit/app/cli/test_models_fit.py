"""`ember models fit` on a local file whose header cannot be estimated: one clear line, no traceback."""

from __future__ import annotations

from app.cli.main import main
from tests.gguf_synth import llama_metadata, write_gguf


def test_fit_of_a_local_file_without_a_layer_count_says_why(tmp_path, capsys):
    metadata = {k: v for k, v in llama_metadata().items() if k != "llama.block_count"}
    path = write_gguf(tmp_path / "odd.gguf", metadata)
    assert main(["models", "fit", str(path)]) == 1
    err = capsys.readouterr().err
    assert "block_count" in err and "cannot be estimated" in err and "Traceback" not in err
