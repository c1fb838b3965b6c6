"""Wiring for the model library's services: the Hub client with the user's token, the download manager, and
this machine's memory for fit estimates (hardware numbers come from ``inference``; ``models`` only gets numbers).
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from dataclasses import dataclass
from typing import Callable

from app.services.surface import Core
from storage.errors import EmberError
from models.downloads import DownloadManager
from models.fit import Machine, ModelShape, requirement
from models.gguf import read_gguf
from models.hub import TOKEN_SECRET, HubClient
from storage.secrets import get_secret


log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelServices:
    """What the library page and the downloads need, made by the composition root (:func:`model_services`).

    Attributes:
        hub: makes a Hub client; None hides Hub search.
        machine: this machine's free memory now, for fit estimates; None shows no fit.
        downloads: the download manager; None when downloads cannot run here.
    """

    hub: Callable[[], HubClient] | None = None
    machine: Callable[[], Machine] | None = None
    downloads: DownloadManager | None = None


def model_services(core: Core) -> ModelServices:
    """The Hub client maker, fit machine and download manager of ``core`` (downloads left out, and logged, when
    they cannot run)."""
    try:
        downloads = download_manager(core)
    except EmberError as exc:
        log.info("downloads not available: %s", exc)
        downloads = None
    return ModelServices(hub=hub_client, machine=lambda: machine(core), downloads=downloads)


def hub_client() -> HubClient:
    """A Hub client for ``$HF_ENDPOINT`` (default huggingface.co) with the Hub token from the keyring, if any."""
    return HubClient(token=get_secret(TOKEN_SECRET))


def download_manager(core: Core, *, hub: HubClient | None = None) -> DownloadManager:
    """The download manager of this data root (its library folder and database).

    Without ``hub`` each download makes a fresh client (:func:`hub_client`), so a token saved later is used.
    """
    return DownloadManager(core.db, core.library, hub or hub_client, library_dir=core.paths.models)


def machine(core: Core | None = None, *, ram: int | None = None, vram: int | None = None,
            no_gpu: bool = False) -> Machine:
    """Free RAM and VRAM now, plus what Ember's loaded model holds (freed when another model replaces it).

    Args:
        core: the running Ember (for its loaded model), if any.
        ram, vram: override the measured free bytes ("what if" estimates).
        no_gpu: estimate for the CPU alone.
    """
    from inference.hardware import memory

    mem = memory()
    ram_free = ram if ram is not None else (mem.available or mem.total or 0)
    vram_free = None if no_gpu else (vram if vram is not None else gpu_free_memory())
    held_ram = held_vram = 0
    loaded = core.engine.loaded if core is not None else None
    if loaded is not None:
        info = read_gguf(loaded.path)
        shape = ModelShape.from_gguf(info, weights=loaded.path.stat().st_size)
        held = requirement(shape, ctx=loaded.params.n_ctx).total
        offloaded = vram_free is not None and loaded.params.n_gpu_layers != 0
        held_vram, held_ram = (held, 0) if offloaded else (0, held)
    return Machine(ram_available=ram_free, vram_free=vram_free, held_ram=held_ram, held_vram=held_vram)


def gpu_free_memory() -> int | None:
    """Free memory of the first CUDA GPU when llama.cpp was built with GPU offload and nvidia-smi answers."""
    from inference.hardware import backend_info

    if not backend_info().gpu_offload or shutil.which("nvidia-smi") is None:
        return None
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=memory.free", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    first = out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else ""
    return int(first) << 20 if first.isdigit() else None
