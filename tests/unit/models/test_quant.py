from models.quant import ModelFiles, RemoteFile, group_files, parse_quant, parse_shard, pick_model
import pytest


@pytest.mark.parametrize("name, quant", [
    ("SmolLM2-135M-Instruct.Q4_1.gguf", "Q4_1"),
    ("llama-2-7b.Q4_K_M.gguf", "Q4_K_M"),
    ("Qwen2.5-7B-Instruct-Q4_K_M-00001-of-00002.gguf", "Q4_K_M"),
    ("model-q8_0.gguf", "Q8_0"),
    ("gemma-UD-Q4_K_XL.gguf", "Q4_K_XL"),
    ("x-IQ3_XXS.gguf", "IQ3_XXS"),
    ("phi-3-mini-4k-instruct-fp16.gguf", "F16"),
    ("Qwen2-7B-bf16.gguf", "BF16"),
    ("Q5_K_S/model-00001-of-00003.gguf", "Q5_K_S"),
    ("model.gguf", None),
    ("Qwen2-7B.gguf", None),
])
def test_parse_quant(name, quant):
    assert parse_quant(name) == quant


def test_parse_shard():
    s = parse_shard("a/m-Q4_K_M-00002-of-00003.gguf")
    assert (s.group, s.index, s.count) == ("a/m-Q4_K_M.gguf", 2, 3)
    assert parse_shard("m.gguf") is None


def test_group_files_groups_shards_and_skips_other_files():
    files = [RemoteFile("m-Q8_0-00002-of-00002.gguf", 5, "b"), RemoteFile("README.md", 1),
             RemoteFile("m-Q8_0-00001-of-00002.gguf", 5, "a"), RemoteFile("m-Q4_K_M.gguf", 6, "c"),
             RemoteFile("n-Q2_K-00001-of-00003.gguf", 1)]
    models = group_files(files)
    assert [m.name for m in models] == ["n-Q2_K.gguf", "m-Q4_K_M.gguf", "m-Q8_0.gguf"]
    split = models[2]
    assert [f.path for f in split.files] == ["m-Q8_0-00001-of-00002.gguf", "m-Q8_0-00002-of-00002.gguf"]
    assert split.size == 10 and split.complete and split.quant == "Q8_0"
    assert not models[0].complete  # 1 of 3 shards present


def test_pick_model():
    models = [ModelFiles("a-Q8_0.gguf", "Q8_0", (RemoteFile("a-Q8_0.gguf", 8),)),
              ModelFiles("a-Q4_K_M.gguf", "Q4_K_M", (RemoteFile("a-Q4_K_M.gguf", 4),))]
    assert pick_model(models).name == "a-Q4_K_M.gguf"
    assert pick_model(models, quant="q8_0").name == "a-Q8_0.gguf"
    assert pick_model(models, file="a-Q8_0.gguf").name == "a-Q8_0.gguf"
    with pytest.raises(LookupError, match="quantisations there: Q4_K_M, Q8_0"):
        pick_model(models, quant="Q2_K")
