"""Offload plans checked against numbers computed by hand (the arithmetic is in the comments)."""

from models.fit import FitClass, Machine, ModelShape
from storage.sizes import GIB, MIB
from inference.offload import plan_offload, vram_budget

# Llama-3-8B at Q4_K_M, rounded: 4.5 GiB of weights, 32 layers, n_embd 4096, 32 heads, 8 KV heads of 128.
LLAMA8B = ModelShape(weights=4831838208, n_layers=32, n_embd=4096, n_head=32, n_head_kv=8, key_length=128,
                     value_length=128, n_vocab=128256)
# At ctx 8192, n_batch 512:
#   kv      = 32 * 8192 * 8 * (128 + 128) * 2           = 1073741824 (1 GiB)
#   compute = 4 * 512 * (128256 + 4*4096 + 32*8192)     =  833093632
#   total   = 4831838208 + 1073741824 + 833093632 + 268435456 (overhead) = 7007109120
TOTAL_8K = 7007109120
# Llama-3.2-1B at Q8_0 as a draft: 1.3 GiB, 16 layers, n_embd 2048, 32 heads, 8 KV heads of 64.
LLAMA1B = ModelShape(weights=1395864371, n_layers=16, n_embd=2048, n_head=32, n_head_kv=8, key_length=64,
                     value_length=64, n_vocab=128256)


def test_8gb_ram_no_gpu():
    # 6 GiB of 8 free. At 8K context it needs 7007109120 > 6442450944: does not fit.
    machine = Machine(ram_available=6 * GIB)
    plan = plan_offload(LLAMA8B, machine, ctx=8192, threads=4, gpu_offload=False)
    assert plan.fit.fit is FitClass.DOES_NOT_FIT and plan.target_gpu_layers == 0 and plan.vram_budget is None
    # At 2K: kv 268435456, compute 4*512*(128256+16384+65536) = 430440448, total 5799149568 <= 6442450944: CPU.
    plan = plan_offload(LLAMA8B, machine, ctx=2048, threads=4, gpu_offload=False)
    assert plan.fit.fit is FitClass.CPU and plan.fit.need.total == 5799149568
    assert plan.target_gpu_layers == 0 and plan.threads == 4


def test_6gb_gpu_partial_offload():
    # free 5.5 GiB; margin max(512 MiB, 5% of 6 GiB) = 536870912; budget 5905580032 - 536870912 = 5368709120.
    # per layer (weights + kv) / 32 = 5905580032 / 32 = 184549376;
    # room for layers 5368709120 - 833093632 - 268435456 = 4267180032 -> 23 layers (23.12).
    machine = Machine(ram_available=16 * GIB, vram_free=5905580032)
    plan = plan_offload(LLAMA8B, machine, ctx=8192, threads=6, gpu_offload=True, gpu_total=6 * GIB)
    assert plan.vram_budget == 5368709120
    assert plan.fit.fit is FitClass.PARTIAL and plan.target_gpu_layers == 23
    # RAM keeps 5905580032 - 23*184549376 + 833093632 + 268435456 = 2762473472.
    assert plan.fit.ram_needed == 2762473472
    assert "23 of 32 layers on the GPU" in plan.summary()


def test_draft_never_pushes_target_layers_off_the_gpu():
    machine = Machine(ram_available=16 * GIB, vram_free=5905580032)
    alone = plan_offload(LLAMA8B, machine, ctx=8192, threads=6, gpu_offload=True, gpu_total=6 * GIB)
    paired = plan_offload(LLAMA8B, machine, ctx=8192, threads=6, gpu_offload=True, gpu_total=6 * GIB,
                          draft=LLAMA1B)
    # The target keeps its 23 layers; 5368709120 - (4244635648 + 833093632 + 268435456) = 22544384 bytes remain,
    # less than the draft's compute buffer alone, so the draft runs on the CPU.
    assert paired.target_gpu_layers == alone.target_gpu_layers == 23
    assert paired.draft_gpu_layers == 0 and paired.draft_layers == 16


def test_12gb_and_24gb_gpus_hold_everything():
    # 12 GiB card, 11.5 GiB free: margin 5% = 644245094, budget 11703785882 >= 7007109120.
    plan12 = plan_offload(LLAMA8B, Machine(ram_available=16 * GIB, vram_free=12348030976), ctx=8192, threads=8,
                          gpu_offload=True, gpu_total=12 * GIB)
    assert plan12.vram_budget == 11703785882 and plan12.fit.fit is FitClass.GPU
    assert plan12.target_gpu_layers == 33  # 32 blocks + the output layer
    # 24 GiB card with a draft: 23 GiB free - 1288490188 margin = 23407571764; the draft's 2749051699 fit in the
    # 16400462644 left after the target.
    plan24 = plan_offload(LLAMA8B, Machine(ram_available=32 * GIB, vram_free=23 * GIB), ctx=8192, threads=8,
                          gpu_offload=True, gpu_total=24 * GIB, draft=LLAMA1B)
    assert plan24.vram_budget == 23407571764
    assert plan24.target_gpu_layers == 33 and plan24.draft_gpu_layers == 17


def test_apple_unified_16gb():
    # Metal budget 0.75 * 16 GiB = 12884901888; margin 5% = 644245094; budget 12240656794.
    metal = 12884901888
    machine = Machine(ram_available=12 * GIB, vram_free=metal)
    plan = plan_offload(LLAMA8B, machine, ctx=8192, threads=4, gpu_offload=True, gpu_total=metal,
                        draft=LLAMA1B, unified_memory=True)
    assert plan.vram_budget == 12240656794 and plan.target_gpu_layers == 33
    # Draft needs 1395864371 + 268435456 (kv) + 816316416 (compute) + 268435456 = 2749051699 of the 5233547674 left.
    assert plan.draft_gpu_layers == 17


def test_build_without_gpu_offload_ignores_the_gpu():
    plan = plan_offload(LLAMA8B, Machine(ram_available=32 * GIB, vram_free=23 * GIB), ctx=8192, threads=8,
                        gpu_offload=False, gpu_total=24 * GIB)
    assert plan.vram_budget is None and plan.target_gpu_layers == 0 and plan.fit.fit is FitClass.CPU
    assert "CPU only" in plan.summary()


def test_loaded_model_memory_counts_as_free():
    machine = Machine(ram_available=GIB, vram_free=256 * MIB, held_vram=8 * GIB)
    assert vram_budget(machine, gpu_total=12 * GIB) == 256 * MIB + 8 * GIB - 644245094
