from inference import hardware


def test_cores_and_memory_are_sane():
    assert 1 <= hardware.physical_cores() <= hardware.logical_cores()
    mem = hardware.memory()
    assert mem.total is None or mem.total > 0
    if mem.total and mem.available:
        assert mem.available <= mem.total


def test_parse_backends():
    assert hardware.parse_backends("CPU : SSE3 = 1 | AVX = 1 |") == ["CPU"]
    info = "CUDA : ARCHS = 890 | USE_GRAPHS = 1 | CPU : SSE3 = 1 | AVX2 = 1 |"
    assert hardware.parse_backends(info) == ["CUDA", "CPU"]


def test_backend_info_reports_cpu():
    info = hardware.backend_info()
    assert "CPU" in info.backends and isinstance(info.gpu_offload, bool)


def test_parse_nvidia_smi():
    text = "NVIDIA H100 80GB HBM3, 81559, 80640\nNVIDIA GeForce RTX 3060, 12288, 11000\n"
    gpus = hardware.parse_nvidia_smi(text)
    assert [g.name for g in gpus] == ["NVIDIA H100 80GB HBM3", "NVIDIA GeForce RTX 3060"]
    assert gpus[1].total == 12288 << 20 and gpus[1].free == 11000 << 20 and gpus[1].kind == "cuda"
    assert hardware.parse_nvidia_smi("garbage\n") == []
