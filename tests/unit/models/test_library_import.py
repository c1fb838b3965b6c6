"""Importing, deleting and fingerprinting library models (split models, truncated files, draft vocabularies)."""

import pytest
from gguf_synth import llama_metadata, write_gguf

from models.errors import ModelFileError
from models.gguf import read_gguf
from models.library import Library, default_name
from models.starter import find_starter_file
from models.vocab import fingerprint


def test_import_refuses_truncated_and_non_gguf_files(db, tmp_path):
    lib = Library(db)
    whole = write_gguf(tmp_path / "whole.gguf", data=b"\1" * 8192)
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(whole.read_bytes()[:-100])
    with pytest.raises(ModelFileError, match="is truncated"):
        lib.import_file(cut)
    (tmp_path / "text.gguf").write_text("hello")
    with pytest.raises(ModelFileError, match="not a GGUF model file"):
        lib.import_file(tmp_path / "text.gguf")
    assert lib.list() == []


def test_split_model_import_lists_once_and_rm_deletes_every_shard(db, tmp_path):
    lib = Library(db)
    folder = tmp_path / "library" / "x"
    shards = [write_gguf(folder / f"m-Q4_0-0000{i}-of-00003.gguf", data=b"\2" * 4096) for i in (1, 2, 3)]
    model = lib.import_file(shards[0])
    assert model.name == default_name(shards[0].name) == "m-q4-0"
    assert model.size == sum(p.stat().st_size for p in shards) and model.files == shards
    plan = lib.plan_delete(model.name, library_dir=tmp_path / "library")
    assert plan.freed == model.size and plan.delete == tuple(shards) and plan.keep == ()
    lib.delete(plan)
    assert not any(p.exists() for p in shards) and lib.list() == []


def test_split_model_with_a_missing_shard_is_refused(db, tmp_path):
    folder = tmp_path / "m"
    first = write_gguf(folder / "m-00001-of-00002.gguf")
    (folder / "m-00002-of-00002.gguf").write_bytes(first.read_bytes()[:50])
    with pytest.raises(ModelFileError, match="truncated"):
        Library(db).import_file(first)


def test_vocab_fingerprint(tmp_path):
    base = llama_metadata()
    same = write_gguf(tmp_path / "a.gguf", base)
    bigger = write_gguf(tmp_path / "b.gguf", {**base, "llama.block_count": 8})  # other model, same vocab
    other_vocab = write_gguf(tmp_path / "c.gguf", llama_metadata(vocab=["<unk>", "<s>", "</s>"] +
                                                                 [f"x{i}" for i in range(97)]))
    a, b, c = (read_gguf(p, load_arrays=True) for p in (same, bigger, other_vocab))
    assert fingerprint(a) == fingerprint(b) and fingerprint(a) != fingerprint(c)
    assert fingerprint(read_gguf(same)) is None  # the vocabulary was not loaded


def test_starter_gets_a_fingerprint(db):
    if find_starter_file() is None:
        pytest.skip("starter model not installed")
    model = Library(db).ensure_starter()
    assert model is not None and len(model.vocab_fingerprint) == 16
