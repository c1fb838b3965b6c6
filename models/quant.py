"""What a GGUF file name says: its quantisation type and whether it is one shard of a split model.

A split model is several files named ``<stem>-00001-of-00003.gguf`` ... ``<stem>-00003-of-00003.gguf``; together
they are one model, listed, fitted, downloaded and deleted as one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Iterable

_QUANT = re.compile(
    r"(?:^|[-._/])"
    r"(?P<q>(?:UD-)?(?:I?Q[1-8](?:_(?:[0-9]|K|S|M|L|XL|XS|XXS|NL|X))*|BF16|F16|FP16|F32|FP32|MXFP4(?:_MOE)?|"
    r"TQ[12]_0))"
    r"(?=$|[-._/])",
    re.IGNORECASE,
)
_SHARD = re.compile(r"^(?P<stem>.+)-(?P<index>\d{5})-of-(?P<count>\d{5})\.gguf$", re.IGNORECASE)


def parse_quant(filename: str) -> str | None:
    """The quantisation type a GGUF file name announces, upper case (``Q4_K_M``, ``IQ3_XXS``, ``F16``), or None.

    The last match wins: ``Q8_0`` in ``model-Q8_0.gguf`` rather than a ``Q2`` that is part of a model name.
    """
    name = PurePosixPath(filename).name
    if name.lower().endswith(".gguf"):
        name = name[: -len(".gguf")]
    shard = _SHARD.match(name + ".gguf")
    if shard:
        name = shard.group("stem")
    found = [m.group("q").upper() for m in _QUANT.finditer(name)]
    if not found:  # the quant may be the folder's name: ``Q4_K_M/model-00001-of-00002.gguf``
        found = [m.group("q").upper() for m in _QUANT.finditer(str(PurePosixPath(filename).parent))]
    if not found:
        return None
    quant = found[-1].replace("FP16", "F16").replace("FP32", "F32")
    return quant[3:] if quant.startswith("UD-") else quant


@dataclass(frozen=True)
class ShardName:
    """One file of a split model: the model's group name, this file's 1-based index and the shard count."""

    group: str
    index: int
    count: int


def parse_shard(filename: str) -> ShardName | None:
    """The split-model position of ``filename`` (``x-00002-of-00003.gguf`` -> group ``x.gguf``, 2, 3), or None."""
    m = _SHARD.match(filename)
    if not m:
        return None
    return ShardName(group=m.group("stem") + ".gguf", index=int(m.group("index")), count=int(m.group("count")))


@dataclass(frozen=True)
class RemoteFile:
    """One GGUF file in a Hub repository: path in the repo, size and the sha256 the Hub records for it."""

    path: str
    size: int | None
    sha256: str | None = None


@dataclass(frozen=True)
class ModelFiles:
    """One model in a repository: a single GGUF file or all shards of a split model, in shard order."""

    name: str
    quant: str | None
    files: tuple[RemoteFile, ...]
    shard_count: int = 1

    @property
    def size(self) -> int | None:
        """Total bytes of all files (None when the Hub did not say for some file)."""
        sizes = [f.size for f in self.files]
        return None if any(s is None for s in sizes) else sum(s for s in sizes if s is not None)

    @property
    def complete(self) -> bool:
        """True when every shard of a split model is present in the repository."""
        return len(self.files) == self.shard_count

    @property
    def first(self) -> RemoteFile:
        """The file holding the GGUF header that describes the model (the first shard)."""
        return self.files[0]


def group_files(files: Iterable[RemoteFile]) -> list[ModelFiles]:
    """Group a repository's ``.gguf`` files into models (shards together), sorted by size then name.

    Files that are not GGUF are ignored.
    """
    groups: dict[str, list[tuple[int, RemoteFile]]] = {}
    counts: dict[str, int] = {}
    for f in files:
        if not f.path.lower().endswith(".gguf"):
            continue
        shard = parse_shard(f.path)
        if shard is None:
            groups.setdefault(f.path, []).append((1, f))
            counts[f.path] = 1
        else:
            groups.setdefault(shard.group, []).append((shard.index, f))
            counts[shard.group] = shard.count
    models = [
        ModelFiles(name=name, quant=parse_quant(name), files=tuple(f for _, f in sorted(members)),
                   shard_count=counts[name])
        for name, members in groups.items()
    ]
    return sorted(models, key=lambda m: (m.size if m.size is not None else 1 << 62, m.name))


def pick_model(models: list[ModelFiles], *, file: str | None = None, quant: str | None = None) -> ModelFiles:
    """Choose one model of a repository by file name (a shard's name picks its whole model) or by quant type.

    With neither, prefer ``Q4_K_M`` (a common good default), else the smallest model.

    Raises:
        LookupError: no model matches (the message lists what the repository has).
    """
    if not models:
        raise LookupError("The repository has no GGUF files.")
    if file:
        for m in models:
            if file == m.name or any(file == f.path for f in m.files):
                return m
        raise LookupError(f"No GGUF file {file!r} in the repository (it has: {', '.join(m.name for m in models)}).")
    wanted = (quant or "Q4_K_M").upper()
    matches = [m for m in models if m.quant == wanted]
    if matches:
        return matches[0]
    if quant:
        have = ", ".join(sorted({m.quant or "?" for m in models}))
        raise LookupError(f"No {wanted} file in the repository (quantisations there: {have}).")
    return models[0]
