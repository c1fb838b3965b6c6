"""Requantise a GGUF file in-process (``llama_model_quantize``): e.g. a Q8_0 or F16 copy of a Q4 model, which has
the same vocabulary and so makes a target/draft pair with the original."""

from __future__ import annotations

import os
from pathlib import Path

import llama_cpp

from inference import llama_log
from inference.errors import EngineError

FTYPES = {"q8_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0, "f16": llama_cpp.LLAMA_FTYPE_MOSTLY_F16,
          "q4_1": llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_1}


def requantized_copy(src: Path | str, dest_dir: Path | str, ftype: str = "q8_0", *, threads: int = 2) -> Path:
    """A requantised copy of ``src`` in ``dest_dir`` (reused when it is already there and newer than ``src``).

    Raises:
        EngineError: llama.cpp could not requantise the file.
    """
    if ftype not in FTYPES:
        raise ValueError(f"ftype must be one of {sorted(FTYPES)}")
    src = Path(src)
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    dest = dest_dir / f"{src.stem}.requant-{ftype}.gguf"
    if dest.is_file() and dest.stat().st_mtime >= src.stat().st_mtime:
        return dest
    llama_log.install()
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = FTYPES[ftype]
    params.allow_requantize = True
    params.nthread = threads
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.part")
    try:
        rc = llama_cpp.llama_model_quantize(str(src).encode(), str(tmp).encode(), params)
        if rc != 0:
            raise EngineError(f"llama.cpp could not requantise {src.name} to {ftype} (code {rc}).")
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest
