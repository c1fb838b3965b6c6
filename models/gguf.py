"""Reading GGUF headers: format checks, metadata and tensor layout, without loading the weights.

The reader works on any binary stream, so the same code reads a local file or the first bytes of a remote one.
Spec: https://github.com/ggml-org/ggml/blob/master/docs/gguf.md
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from models.errors import ModelFileError
from storage.sizes import format_bytes

GGUF_MAGIC = b"GGUF"
SUPPORTED_VERSIONS = (2, 3)
DEFAULT_ALIGNMENT = 32
# Arrays longer than this are summarised (type and length) unless the caller asks for them.
LARGE_ARRAY = 64

_SCALARS: dict[int, str] = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
_STRING, _ARRAY = 8, 9

# ggml tensor types: (elements per block, bytes per block). Unknown types skip the size check.
GGML_TYPES: dict[int, tuple[str, int, int]] = {
    0: ("F32", 1, 4), 1: ("F16", 1, 2), 2: ("Q4_0", 32, 18), 3: ("Q4_1", 32, 20), 6: ("Q5_0", 32, 22),
    7: ("Q5_1", 32, 24), 8: ("Q8_0", 32, 34), 9: ("Q8_1", 32, 36), 10: ("Q2_K", 256, 84), 11: ("Q3_K", 256, 110),
    12: ("Q4_K", 256, 144), 13: ("Q5_K", 256, 176), 14: ("Q6_K", 256, 210), 15: ("Q8_K", 256, 292),
    16: ("IQ2_XXS", 256, 66), 17: ("IQ2_XS", 256, 74), 18: ("IQ3_XXS", 256, 98), 19: ("IQ1_S", 256, 50),
    20: ("IQ4_NL", 32, 18), 21: ("IQ3_S", 256, 110), 22: ("IQ2_S", 256, 82), 23: ("IQ4_XS", 256, 136),
    24: ("I8", 1, 1), 25: ("I16", 1, 2), 26: ("I32", 1, 4), 27: ("I64", 1, 8), 28: ("F64", 1, 8),
    29: ("IQ1_M", 256, 56), 30: ("BF16", 1, 2), 34: ("TQ1_0", 256, 54), 35: ("TQ2_0", 256, 66),
    39: ("MXFP4", 32, 17),
}

# general.file_type values (llama_ftype) to the names users know.
FILE_TYPES: dict[int, str] = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K", 11: "Q3_K_S",
    12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S", 17: "Q5_K_M", 18: "Q6_K",
    19: "IQ2_XXS", 20: "IQ2_XS", 21: "Q2_K_S", 22: "IQ3_XS", 23: "IQ3_XXS", 24: "IQ1_S", 25: "IQ4_NL",
    26: "IQ3_S", 27: "IQ3_M", 28: "IQ2_S", 29: "IQ2_M", 30: "IQ4_XS", 31: "IQ1_M", 32: "BF16",
    36: "TQ1_0", 37: "TQ2_0", 38: "MXFP4_MOE",
}


@dataclass(frozen=True)
class ArraySummary:
    """A long metadata array that was not loaded: its element type and length."""

    item_type: int
    length: int


@dataclass(frozen=True)
class TensorInfo:
    """One tensor's name, shape, ggml type and offset from the start of the data section."""

    name: str
    shape: tuple[int, ...]
    ggml_type: int
    offset: int

    @property
    def n_elements(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    @property
    def n_bytes(self) -> int | None:
        """Size of the tensor's data, or None for a type this reader does not know."""
        info = GGML_TYPES.get(self.ggml_type)
        if info is None:
            return None
        _, block, size = info
        return self.n_elements // block * size


@dataclass
class GGUFInfo:
    """What a GGUF header says about a model."""

    version: int
    metadata: dict[str, Any]
    tensors: list[TensorInfo] = field(default_factory=list)
    data_offset: int = 0

    @property
    def architecture(self) -> str | None:
        return self.metadata.get("general.architecture")

    @property
    def name(self) -> str | None:
        return self.metadata.get("general.name")

    def arch_value(self, key: str) -> Any:
        """``{architecture}.{key}`` from the metadata, e.g. ``context_length``."""
        return self.metadata.get(f"{self.architecture}.{key}")

    @property
    def context_length(self) -> int | None:
        return self.arch_value("context_length")

    @property
    def block_count(self) -> int | None:
        return self.arch_value("block_count")

    @property
    def chat_template(self) -> str | None:
        return self.metadata.get("tokenizer.chat_template")

    @property
    def quantization(self) -> str | None:
        ft = self.metadata.get("general.file_type")
        return FILE_TYPES.get(ft) if isinstance(ft, int) else None

    @property
    def parameter_count(self) -> int:
        return sum(t.n_elements for t in self.tensors)

    @property
    def expected_size(self) -> int | None:
        """Bytes the whole file needs (header + all tensor data), or None if a tensor type is unknown."""
        end = self.data_offset
        for t in self.tensors:
            nb = t.n_bytes
            if nb is None:
                return None
            end = max(end, self.data_offset + t.offset + nb)
        return end


class _Reader:
    def __init__(self, stream: BinaryIO, what: str) -> None:
        self._s = stream
        self._what = what
        self.pos = 0

    def read(self, n: int) -> bytes:
        data = self._s.read(n)
        if len(data) != n:
            raise ModelFileError(
                f"{self._what} is truncated: its GGUF header ends early (at byte {self.pos + len(data)}). "
                "Download or copy the file again."
            )
        self.pos += n
        return data

    def unpack(self, fmt: str) -> Any:
        size = struct.calcsize("<" + fmt)
        return struct.unpack("<" + fmt, self.read(size))[0]

    def string(self) -> str:
        n = self.unpack("Q")
        if n > 1 << 30:
            raise ModelFileError(f"{self._what} is damaged: a metadata string claims {n} bytes.")
        return self.read(n).decode("utf-8", errors="replace")

    def value(self, vtype: int, load_arrays: bool) -> Any:
        if vtype in _SCALARS:
            return self.unpack(_SCALARS[vtype])
        if vtype == _STRING:
            return self.string()
        if vtype == _ARRAY:
            item_type = self.unpack("I")
            n = self.unpack("Q")
            if n > 1 << 32:
                raise ModelFileError(f"{self._what} is damaged: a metadata array claims {n} items.")
            if item_type in _SCALARS:
                fmt = _SCALARS[item_type]
                raw = self.read(n * struct.calcsize(fmt))
                if not load_arrays and n > LARGE_ARRAY:
                    return ArraySummary(item_type, n)
                return list(struct.unpack(f"<{n}{fmt}", raw))
            items = [self.value(item_type, load_arrays) for _ in range(n)]
            if not load_arrays and n > LARGE_ARRAY:
                return ArraySummary(item_type, n)
            return items
        raise ModelFileError(f"{self._what} is damaged or not a GGUF file: unknown metadata type {vtype}.")


def read_gguf_stream(stream: BinaryIO, *, what: str = "The model file", load_arrays: bool = False,
                     tensors: bool = True) -> GGUFInfo:
    """Parse a GGUF header from a binary stream positioned at the file's start.

    Args:
        stream: a readable binary stream.
        what: how error messages name the source (e.g. the file path).
        load_arrays: load long arrays (the vocabulary) instead of summarising them.
        tensors: also read the tensor table (needed for sizes and truncation checks).

    Raises:
        ModelFileError: not a GGUF file, an unsupported version, or the header is cut short or damaged.
    """
    r = _Reader(stream, what)
    magic = stream.read(4)
    r.pos = len(magic)
    if magic != GGUF_MAGIC:
        raise ModelFileError(f"{what} is not a GGUF model file (it does not start with 'GGUF'). "
                             "Ember runs GGUF models; convert the model or pick a .gguf file.")
    version = r.unpack("I")
    if version not in SUPPORTED_VERSIONS:
        raise ModelFileError(f"{what} uses GGUF version {version}, which Ember does not read "
                             f"(supported: {', '.join(map(str, SUPPORTED_VERSIONS))}).")
    n_tensors = r.unpack("Q")
    n_kv = r.unpack("Q")
    if n_tensors > 1 << 24 or n_kv > 1 << 24:
        raise ModelFileError(f"{what} is damaged: its header claims {n_tensors} tensors and {n_kv} keys.")
    metadata: dict[str, Any] = {}
    for _ in range(n_kv):
        key = r.string()
        metadata[key] = r.value(r.unpack("I"), load_arrays)
    info = GGUFInfo(version=version, metadata=metadata)
    if not tensors:
        return info
    for _ in range(n_tensors):
        name = r.string()
        n_dims = r.unpack("I")
        if n_dims > 8:
            raise ModelFileError(f"{what} is damaged: tensor {name!r} claims {n_dims} dimensions.")
        shape = tuple(r.unpack("Q") for _ in range(n_dims))
        info.tensors.append(TensorInfo(name=name, shape=shape, ggml_type=r.unpack("I"), offset=r.unpack("Q")))
    alignment = metadata.get("general.alignment", DEFAULT_ALIGNMENT) or DEFAULT_ALIGNMENT
    info.data_offset = (r.pos + alignment - 1) // alignment * alignment
    return info


def read_gguf(path: Path | str, *, load_arrays: bool = False) -> GGUFInfo:
    """Read and check a local GGUF file's header, and check the file holds all its tensor data.

    Raises:
        ModelFileError: missing, unreadable, not GGUF, damaged, or truncated (shorter than its tensors need).
    """
    path = Path(path)
    what = f"The model file {path}"
    try:
        size = path.stat().st_size
        if path.is_dir():
            raise ModelFileError(f"{path} is a folder, not a GGUF model file.")
        with path.open("rb", buffering=1 << 20) as f:
            info = read_gguf_stream(f, what=what, load_arrays=load_arrays)
    except FileNotFoundError:
        raise ModelFileError(f"The model file {path} does not exist.") from None
    except PermissionError:
        raise ModelFileError(f"The model file {path} cannot be read: permission denied.") from None
    except IsADirectoryError:
        raise ModelFileError(f"{path} is a folder, not a GGUF model file.") from None
    expected = info.expected_size
    if expected is not None and size < expected:
        raise ModelFileError(
            f"{what} is truncated: it has {format_bytes(size)} of the {format_bytes(expected)} its tensors need. "
            "Download or copy the file again."
        )
    return info


def file_size(path: Path | str) -> int:
    """Size of a file in bytes (0 if it does not exist)."""
    try:
        return os.stat(path).st_size
    except OSError:
        return 0
