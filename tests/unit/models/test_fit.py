"""The fit estimate against arithmetic done by hand (numbers in bytes)."""

import pytest
from model_repos import TINY, TINY_FILE

from models.errors import ModelFileError
from models.fit import RUNTIME_OVERHEAD, FitClass, Machine, ModelShape, estimate_fit, requirement
from storage.sizes import GIB

# Llama-2-7B Q4_K_M: a 4,081,004,224-byte file, 32 layers, n_embd 4096, 32 heads (no GQA), vocab 32000.
LLAMA2_7B_Q4_K_M = ModelShape(weights=4_081_004_224, n_layers=32, n_embd=4096, n_head=32, n_head_kv=32,
                              key_length=128, value_length=128, n_vocab=32000, context_length=4096)
# KV at 4096: 32 layers x 4096 ctx x 32 kv heads x (128 + 128) x 2 bytes
KV_4K = 32 * 4096 * 32 * 256 * 2  # = 2,147,483,648
# compute: 4 x 512 x (32000 + 4 x 4096 + 32 x 4096)
COMPUTE_4K = 4 * 512 * (32000 + 16384 + 131072)  # = 367,525,888
TOTAL_4K = 4_081_004_224 + KV_4K + COMPUTE_4K + 268_435_456  # = 6,864,449,216 (6.39 GiB)


def test_requirement_matches_the_hand_arithmetic():
    need = requirement(LLAMA2_7B_Q4_K_M, ctx=4096)
    assert (need.kv_cache, need.compute, need.overhead) == (2_147_483_648, 367_525_888, RUNTIME_OVERHEAD)
    assert need.total == TOTAL_4K == 6_864_449_216


def test_7b_on_8gb_ram_without_gpu_runs_on_cpu():
    # An 8 GB machine with 7 GiB available: 6.39 GiB needed.
    r = estimate_fit(LLAMA2_7B_Q4_K_M, Machine(ram_available=7 * GIB), ctx=4096)
    assert r.fit is FitClass.CPU and r.ram_needed == TOTAL_4K and r.gpu_layers == 0


def test_7b_on_8gb_ram_with_only_6gib_free_does_not_fit_but_would_at_shorter_context():
    r = estimate_fit(LLAMA2_7B_Q4_K_M, Machine(ram_available=6 * GIB), ctx=4096)
    assert r.fit is FitClass.DOES_NOT_FIT and "does not fit" in r.summary()
    # at 2048: KV 1 GiB, compute 4 x 512 x (48384 + 65536) = 233,308,160 -> 5,656,489,728 < 6 GiB
    assert estimate_fit(LLAMA2_7B_Q4_K_M, Machine(ram_available=6 * GIB), ctx=2048).fit is FitClass.CPU


def test_7b_on_a_6gb_gpu_is_a_partial_offload_of_29_of_32_layers():
    # per layer: (4,081,004,224 + 2,147,483,648) / 32 = 194,640,246
    # GPU budget for layers: 6 GiB - compute - overhead = 6,442,450,944 - 367,525,888 - 268,435,456 = 5,806,489,600
    # 5,806,489,600 // 194,640,246 = 29
    r = estimate_fit(LLAMA2_7B_Q4_K_M, Machine(ram_available=16 * GIB, vram_free=6 * GIB), ctx=4096)
    assert r.fit is FitClass.PARTIAL and (r.gpu_layers, r.total_layers) == (29, 32)
    assert r.vram_needed == int(29 * 194_640_246) + COMPUTE_4K + RUNTIME_OVERHEAD
    assert "29 of 32 layers" in r.summary()


def test_7b_on_a_24gb_gpu_fits_entirely():
    r = estimate_fit(LLAMA2_7B_Q4_K_M, Machine(ram_available=8 * GIB, vram_free=24 * GIB), ctx=4096)
    assert r.fit is FitClass.GPU and r.gpu_layers == 32 and r.vram_needed == TOTAL_4K


def test_a_tiny_gpu_that_holds_no_layer_falls_back_to_cpu():
    r = estimate_fit(LLAMA2_7B_Q4_K_M, Machine(ram_available=16 * GIB, vram_free=512 << 20), ctx=4096)
    assert r.fit is FitClass.CPU


def test_memory_held_by_the_loaded_model_counts_as_available():
    # 5 GiB free + 2 GiB held by Ember's current model (freed when it is replaced) = 7 GiB >= 6.39 GiB
    assert estimate_fit(LLAMA2_7B_Q4_K_M, Machine(ram_available=5 * GIB), ctx=4096).fit is FitClass.DOES_NOT_FIT
    r = estimate_fit(LLAMA2_7B_Q4_K_M, Machine(ram_available=5 * GIB, held_ram=2 * GIB), ctx=4096)
    assert r.fit is FitClass.CPU and r.ram_available == 7 * GIB


def test_gqa_shrinks_the_kv_cache():
    mistral = ModelShape(weights=4_368_439_584, n_layers=32, n_embd=4096, n_head=32, n_head_kv=8,
                         key_length=128, value_length=128, n_vocab=32000)
    assert requirement(mistral, ctx=4096).kv_cache == 32 * 4096 * 8 * 256 * 2 == 512 << 20


def test_shape_from_a_header_read_on_the_hub(client, hub_repos):
    info, _ = client.read_header(TINY, TINY_FILE)
    size = len(hub_repos.repos[TINY].files[TINY_FILE])
    shape = ModelShape.from_gguf(info, weights=size)
    assert (shape.n_layers, shape.n_embd, shape.n_head, shape.n_head_kv, shape.key_length, shape.n_vocab) == (
        2, 64, 4, 2, 16, 100)
    assert requirement(shape, ctx=1024).kv_cache == 2 * 1024 * 2 * 32 * 2


def test_shape_needs_layer_count():
    from models.gguf import GGUFInfo
    with pytest.raises(ModelFileError, match="block_count"):
        ModelShape.from_gguf(GGUFInfo(version=3, metadata={"general.architecture": "x"}), weights=1)


def test_library_fit_reads_the_row_header_and_names_the_model_when_it_cannot(tmp_path):
    from models.fit import library_fit
    from models.library import LibraryModel
    from storage.errors import EmberError
    from tests.helpers import starter_path, write_tiny_gguf

    here = Machine(ram_available=64 * GIB, vram_free=None)
    starter = starter_path()
    row = LibraryModel(name="starter", path=starter, size=starter.stat().st_size)
    result = library_fit(row, here, ctx=2048)
    assert result.fit is FitClass.CPU and result.need.weights == starter.stat().st_size
    tiny = write_tiny_gguf(tmp_path / "tiny.gguf")  # no block count: no estimate
    with pytest.raises(EmberError, match="Cannot estimate whether tiny fits"):
        library_fit(LibraryModel(name="tiny", path=tiny, size=tiny.stat().st_size), here, ctx=2048)
