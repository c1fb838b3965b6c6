"""One file from the Hub into a partial file, resumed with HTTP Range, checked against its sha256.

:func:`fetch_verified` is the transfer-and-verify step of a download (``models.downloads`` queues downloads,
records their state and installs the verified files).
"""

from __future__ import annotations

import errno
import hashlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import httpx2
from huggingface_hub.utils import hf_raise_for_status

from models.errors import ChecksumError, DiskSpaceError, DownloadError
from models.gguf import file_size
from models.hub import HubClient
from storage.sizes import format_bytes

log = logging.getLogger(__name__)

PROGRESS_SAVE_INTERVAL = 1.0  # seconds between saves of the byte count


@dataclass(frozen=True)
class TransferOptions:
    """How a transfer copes with the network.

    Attributes:
        retries: attempts after a dropped connection (with no progress in between) before failing.
        backoff: seconds before the first retry, doubling on each further one.
        chunk_size: bytes read and written at a time (``check_stop`` runs between chunks).
        sleep: the pause between retries (tests pass a no-op).
    """

    retries: int = 4
    backoff: float = 1.0
    chunk_size: int = 1 << 20
    sleep: Callable[[float], None] = field(default=time.sleep)


@dataclass(frozen=True)
class FileToFetch:
    """One file of a model at a pinned commit, and where its bytes go."""

    repo_id: str
    revision: str
    path: str  # in the repository
    size: int
    sha256: str | None  # the Hub's LFS record, when the listing gave it
    part: Path  # the partial file the bytes are appended to
    dest: Path  # where the verified file lives in the library
    label: str = ""  # for the log (the download's id)


class DiskFilledUp(DiskSpaceError):
    """The disk filled up while writing a partial file (unlike a refusal before writing, the partials go)."""


def fetch_verified(hub: HubClient, f: FileToFetch, options: TransferOptions, *, check_stop: Callable[[], None],
                   on_start: Callable[[int], None], on_bytes: Callable[[int], None],
                   save_done: Callable[[int], None]) -> None:
    """Download (or resume) ``f`` into its partial file and check its sha256; a file already at ``f.dest`` with
    the right sha256 is verified where it is and left in place.

    Args:
        hub: the Hub client (endpoint, token).
        f: the file.
        options: retries, backoff, chunk size.
        check_stop: called between chunks; raises to stop (a pause or cancel).
        on_start: bytes already on disk when the transfer starts.
        on_bytes: bytes of the file on disk now, after every chunk.
        save_done: records the bytes on disk (about once a second, and at the end).

    Raises:
        ChecksumError: the bytes' sha256 differs from the Hub's (the partial file is removed).
        DiskFilledUp: the disk filled up while writing (the partial file is removed by the caller).
        DownloadError: the connection kept failing (the partial file is kept: a resume continues it).
        HubAccessError, HubNotFoundError: the Hub refused the file.
    """
    f.part.parent.mkdir(parents=True, exist_ok=True)
    meta = hub.file_metadata(f.repo_id, f.path, revision=f.revision)  # access check, before writing
    expected = f.sha256 or meta.sha256
    if not f.part.exists() and expected and file_size(f.dest) == f.size and sha256_of(f.dest) == expected:
        # Already in the library: moved there before a crash, or an installed model asked for again. It is
        # verified where it is and never moved, so a later failure or cancel of this download cannot touch it.
        on_start(f.size)
        save_done(f.size)
        return
    st = _PartState(hashlib.sha256(), file_size(f.part))
    if st.have > f.size:
        f.part.unlink()
        st.have = 0
    if st.have:
        with f.part.open("rb") as existing:
            while block := existing.read(1 << 20):
                st.hasher.update(block)
    on_start(st.have)
    url = hub.file_url(f.repo_id, f.path, revision=f.revision)
    failures = 0
    while st.have < f.size:
        check_stop()
        before = st.have
        try:
            _stream(hub, f, url, st, options, check_stop=check_stop, on_bytes=on_bytes, save_done=save_done)
            if st.have < f.size:
                raise _ShortRead(f"the connection closed after {st.have} of {f.size} bytes")
        except (httpx2.TransportError, _ShortRead) as exc:
            have = st.have
            failures = 0 if have > before else failures + 1
            if failures > options.retries:
                raise DownloadError(
                    f"Downloading {f.path} from {f.repo_id} failed {failures} times in a row ({exc}). "
                    f"{format_bytes(have)} of {format_bytes(f.size)} are kept; run the same command again to "
                    "resume."
                ) from exc
            delay = options.backoff * 2 ** max(0, failures - 1)
            log.info("download %s: %s: %s; retrying in %.1fs from byte %d", f.label, f.path, exc, delay, have)
            options.sleep(delay)
    actual = st.hasher.hexdigest()
    if expected and actual != expected:
        f.part.unlink(missing_ok=True)
        raise ChecksumError(
            f"{f.path} from {f.repo_id} is damaged: its sha256 is {actual[:12]}... but the Hub records "
            f"{expected[:12]}.... The bad file was removed; run the same command again to download it anew."
        )
    save_done(st.have)


def _stream(hub: HubClient, f: FileToFetch, url: str, st: _PartState, options: TransferOptions, *,
            check_stop: Callable[[], None], on_bytes: Callable[[int], None],
            save_done: Callable[[int], None]) -> None:
    """One GET from ``st.have`` on, appending to the partial file; ``st`` always matches the bytes on disk."""
    headers = {**hub.headers(), "Accept-Encoding": "identity"}
    if st.have:
        headers["Range"] = f"bytes={st.have}-"
    with hub.stream(url, headers=headers) as resp:
        if resp.status_code >= 400 and resp.status_code != 416:
            resp.read()
            with hub.errors(f.repo_id, f.path):
                hf_raise_for_status(resp)
        start = _range_start(resp) if resp.status_code == 206 else 0
        if resp.status_code == 416 or start != st.have:  # the server will not continue where we are
            log.info("download %s: %s: the server restarts the file from byte %d", f.label, f.path, start)
            f.part.unlink(missing_ok=True)
            st.hasher, st.have = hashlib.sha256(), 0
            if resp.status_code == 416 or start != 0:
                raise _ShortRead("the server refused to resume")
        last_save = time.monotonic()
        with f.part.open("ab") as out:
            for chunk in resp.iter_bytes(options.chunk_size):
                check_stop()
                try:
                    out.write(chunk)
                    out.flush()
                except OSError as exc:
                    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                        raise DiskFilledUp(
                            f"The disk of {f.part.parent.parent} filled up while downloading {f.path}. The "
                            "partial file was removed; free some space and run the same command again."
                        ) from exc
                    raise
                st.hasher.update(chunk)
                st.have += len(chunk)
                on_bytes(st.have)
                if time.monotonic() - last_save >= PROGRESS_SAVE_INTERVAL:
                    save_done(st.have)
                    last_save = time.monotonic()
                if st.have > f.size:
                    break  # more bytes than the Hub says the file has: the checksum will tell
    save_done(st.have)


@dataclass
class _PartState:
    """The partial file's length and the running sha256 of its bytes."""

    hasher: Any
    have: int


class _ShortRead(Exception):
    """The body ended before the file's last byte (retried like a dropped connection)."""


def _range_start(resp: httpx2.Response) -> int:
    """The first byte of a 206 answer (``Content-Range: bytes START-END/TOTAL``)."""
    value = resp.headers.get("Content-Range", "")
    try:
        return int(value.split()[1].split("-")[0])
    except (IndexError, ValueError):
        return -1


def sha256_of(path: Path) -> str:
    """The sha256 of a file's bytes (hex)."""
    hasher = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(1 << 20):
            hasher.update(block)
    return hasher.hexdigest()

