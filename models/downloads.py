"""Downloads that never corrupt the library.

A download is one model (a file, or every shard of a split model) from one pinned commit. Its bytes go to a
partial file under ``<library>/.partial/``; an interrupted download (dropped connection, pause, crash, SIGKILL)
continues from the partial file's length with an HTTP Range request. Each file's sha256 is checked against the
Hub's LFS record; only when every shard is verified are they renamed into the library and catalogued. A checksum
mismatch, a cancel or a disk that fills up while writing removes the partial files (a full disk would otherwise stay
full, breaking other programs and Ember's own database writes); a download refused before writing because the disk
lacks room keeps them, so it resumes once space is freed. A file already in the library with the right sha256 (an
installed model asked for again, or one moved there just before a crash) is verified where it is and never moved, so
no failure or cancel can take an installed model away. State lives in SQLite, so a restart resumes.

Three parts: the rows (``storage.downloads.DownloadStore``), the transfer and check of one file
(``models.transfer.fetch_verified``), and here the queue: :class:`DownloadManager` with its worker thread, whose
queue state and condition variable sit on a lock of its own (the database's lock is only held per statement).
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import sqlite_utils

from models.errors import ChecksumError, DiskSpaceError, DownloadError
from models.gguf import file_size
from models.hub import HubClient
from models.library import Library, LibraryModel, default_name
from models.quant import ModelFiles
from models.transfer import DiskFilledUp, FileToFetch, TransferOptions, fetch_verified
from storage.downloads import FINISHED, Download, DownloadFile, DownloadState, DownloadStore
from storage.errors import EmberError, user_message
from storage.sizes import format_bytes

log = logging.getLogger(__name__)

PARTIAL_DIR = ".partial"
DISK_MARGIN = 16 << 20  # keep this much free beyond the download itself
RATE_WINDOW = 5.0  # seconds of history behind the rate and ETA


class DownloadStopped(EmberError, InterruptedError):
    """A running download was paused or cancelled on request."""


@dataclass(frozen=True)
class Progress:
    """A progress report: bytes done of total for the whole model, rate (bytes/s) and ETA (s, None if unknown)."""

    download_id: int
    state: DownloadState
    done: int
    total: int
    rate: float
    eta: float | None
    file: str


ProgressFn = Callable[[Progress], None]
HubFactory = Callable[[], HubClient]


class DownloadManager:
    """A queue of downloads into one library folder, with pause, resume, cancel and restart recovery.

    :meth:`run` downloads one queued model in the calling thread (the CLI); :meth:`start` runs the queue on a
    worker thread (the desktop app). :meth:`pause` and :meth:`cancel` may be called from any thread.
    """

    def __init__(self, db: sqlite_utils.Database, library: Library, hub: HubClient | HubFactory, *, library_dir: Path,
                 retries: int = 4, backoff: float = 1.0, chunk_size: int = 1 << 20,
                 on_progress: ProgressFn | None = None, sleep: Callable[[float], None] = time.sleep) -> None:
        """
        Args:
            db: the database (migrated), holding the ``downloads`` tables.
            library: the catalogue verified models are added to.
            hub: the Hub client (endpoint and token), or a function making one; a function is called at the start
                of each download, so a token saved meanwhile is used.
            library_dir: the library folder; partial files live in its ``.partial`` subfolder.
            retries: attempts after a dropped connection (with no progress in between) before failing.
            backoff: seconds before the first retry, doubling on each further one.
            chunk_size: bytes read and written at a time (pause/cancel are checked between chunks).
            on_progress: called with every progress report of every download, on the downloading thread (also
                settable later as :attr:`on_progress`).
            sleep: the pause between retries (tests pass a no-op).
        """
        self._store = DownloadStore(db)
        self._library = library
        self._hub = hub
        self.library_dir = Path(library_dir)
        self.transfer = TransferOptions(retries=retries, backoff=backoff, chunk_size=chunk_size, sleep=sleep)
        self.on_progress = on_progress
        self._lock = threading.RLock()  # the queue's own: running downloads, pause/cancel requests, the worker
        self._requests: dict[int, DownloadState] = {}  # pause/cancel asked of running downloads
        self._running: set[int] = set()
        self._wake = threading.Condition(self._lock)
        self._worker: threading.Thread | None = None
        self._stopping = False
        self._store.requeue_running()  # a download that was running when the process died resumes

    # --- queue -----------------------------------------------------------------------------------------------

    def enqueue(self, repo_id: str, model: ModelFiles, *, revision: str, name: str | None = None) -> Download:
        """Queue a model for download, or return the unfinished download of the same files (to resume it).

        Args:
            repo_id: the repository.
            model: the model's files (from :meth:`HubClient.files`), with sizes and sha256.
            revision: the commit the files are pinned to.
            name: library name when done (default: from the file name).

        Raises:
            DiskSpaceError: the library's disk lacks the space the remaining bytes need.
            DownloadError: the Hub did not give a file's size.
        """
        if any(f.size is None for f in model.files):
            raise DownloadError(f"The Hub did not give the size of every file of {model.name}; Ember cannot "
                                "check disk space or completeness. Try again later.")
        with self._lock:
            existing = self._store.find_unfinished(repo_id, model.name)
            if existing is not None and (existing.revision != revision
                                         or [f.sha256 for f in existing.files] != [f.sha256 for f in model.files]):
                log.info("download %s: %s changed on the Hub, starting over", existing.id, model.name)
                self.cancel(existing.id)
                existing = None
            if existing is not None:
                self.check_disk_space(existing)
                if existing.state is not DownloadState.RUNNING:
                    self._set_state(existing.id, DownloadState.QUEUED, None)
                self._wake.notify_all()
                return self.get(existing.id)
            dl_id = self._store.insert(repo_id=repo_id, revision=revision, model_file=model.name, name=name,
                                       files=[(f.path, f.size, f.sha256) for f in model.files])
            dl = self.get(dl_id)
            try:
                self.check_disk_space(dl)
            except DiskSpaceError as exc:
                self._set_state(dl_id, DownloadState.FAILED, str(exc))
                raise
            self._wake.notify_all()
            return dl

    def get(self, download_id: int) -> Download:
        """One download by id.

        Raises:
            NotFoundError: no such download.
        """
        return self._store.get(download_id)

    def list(self, *, unfinished: bool = False) -> list[Download]:
        """Downloads, oldest first (``unfinished``: only those not done or cancelled)."""
        return [d for d in self._store.list() if not unfinished or d.state not in FINISHED]

    def check_disk_space(self, dl: Download) -> None:
        """Refuse a download the library's disk has no room for (counting bytes already in partial files).

        Raises:
            DiskSpaceError: too little free space; the message says how much is needed.
        """
        self.library_dir.mkdir(parents=True, exist_ok=True)
        remaining = sum(max(0, f.size - file_size(self._part(dl, f))) for f in dl.files)
        free = shutil.disk_usage(self.library_dir).free
        if remaining + DISK_MARGIN > free:
            raise DiskSpaceError(
                f"Not enough disk space for {dl.model_file}: it needs {format_bytes(remaining)} more and only "
                f"{format_bytes(free)} are free on the disk of {self.library_dir}. Free some space (`ember models rm` "
                "removes models) and run the same command again."
            )

    def bytes_on_disk(self, dl: Download) -> int:
        """Bytes already in the download's partial files (what a resume will not fetch again)."""
        return sum(min(f.size, file_size(self._part(dl, f))) for f in dl.files)

    # --- control ---------------------------------------------------------------------------------------------

    def pause(self, download_id: int) -> None:
        """Pause a download: a running one stops after its current chunk; its partial files are kept."""
        with self._lock:
            dl = self.get(download_id)
            if download_id in self._running:
                self._requests[download_id] = DownloadState.PAUSED
            elif dl.state in (DownloadState.QUEUED, DownloadState.FAILED):
                self._set_state(download_id, DownloadState.PAUSED, None)

    def resume(self, download_id: int) -> None:
        """Queue a paused or failed download again (it continues from its partial files)."""
        with self._lock:
            if self.get(download_id).state in (DownloadState.PAUSED, DownloadState.FAILED):
                self._set_state(download_id, DownloadState.QUEUED, None)
                self._wake.notify_all()

    def cancel(self, download_id: int) -> None:
        """Cancel a download and remove its partial files (a running one stops after its current chunk)."""
        with self._lock:
            dl = self.get(download_id)
            if download_id in self._running:
                self._requests[download_id] = DownloadState.CANCELLED
                return
            if dl.state is not DownloadState.DONE:
                self._remove_partials(dl)
                self._set_state(download_id, DownloadState.CANCELLED, None)

    # --- running ---------------------------------------------------------------------------------------------

    def run(self, download_id: int, *, on_progress: ProgressFn | None = None) -> LibraryModel:
        """Download every file of a queued (or paused/failed) download, verify, move into the library, catalogue.

        Args:
            download_id: from :meth:`enqueue`.
            on_progress: called with progress reports (besides the manager's own callback).

        Returns:
            The catalogued model.

        Raises:
            DownloadStopped: paused or cancelled meanwhile (a KeyboardInterrupt pauses too, and propagates).
            ChecksumError: a file's sha256 differs from the Hub's (its partial file is removed).
            DiskSpaceError: too little free space to start (the partial files are kept, to resume once space is
                freed), or the disk filled up while writing (the partial files are removed).
            DownloadError: the connection kept failing (the partial file is kept: running again resumes).
            HubAccessError, HubNotFoundError: the Hub refused the file.
        """
        with self._lock:
            dl = self.get(download_id)
            if dl.state is DownloadState.DONE:
                return self._library.get(dl.name or default_name(dl.model_file))
            self._claim(dl)
        return self._run_claimed(dl, on_progress)

    def _claim(self, dl: Download) -> None:
        """Mark a download as running in this process (the caller holds the lock)."""
        if dl.id in self._running:
            raise DownloadError(f"{dl.model_file} is already downloading.")
        self._running.add(dl.id)
        self._requests.pop(dl.id, None)
        self._set_state(dl.id, DownloadState.RUNNING, None)

    def _run_claimed(self, dl: Download, on_progress: ProgressFn | None) -> LibraryModel:
        """The body of :meth:`run` for a download :meth:`_claim` marked running."""
        download_id = dl.id
        meter = _Meter(dl, [cb for cb in (self.on_progress, on_progress) if cb])
        try:
            self.check_disk_space(dl)  # a refusal here wrote nothing: the partial files stay (EmberError below)
            hub = self._hub() if callable(self._hub) else self._hub
            for f in dl.files:
                self._fetch(hub, dl, f, meter)
            model = self._install(dl)
        except DownloadStopped as exc:
            state = self._requests.get(download_id, DownloadState.PAUSED)
            if state is DownloadState.CANCELLED:
                self._remove_partials(dl)
                exc = DownloadStopped(f"Download of {dl.model_file} cancelled; its partial files were removed.")
            self._set_state(download_id, state, None)
            meter.report(state)
            raise exc from None
        except KeyboardInterrupt:
            self._set_state(download_id, DownloadState.PAUSED, None)
            raise
        except (ChecksumError, DiskFilledUp) as exc:
            self._remove_partials(dl)  # first: on a full disk this frees the room to record the failure
            self._fail(download_id, str(exc), meter)
            raise
        except EmberError as exc:
            self._fail(download_id, str(exc), meter)
            raise
        except BaseException as exc:  # a bug: keep the partial files, record it, let it propagate
            self._fail(download_id, user_message(exc, doing=f"download {download_id}"), meter)
            raise
        finally:
            with self._lock:
                self._running.discard(download_id)
                self._requests.pop(download_id, None)
        self._set_state(download_id, DownloadState.DONE, None)
        meter.report(DownloadState.DONE)
        return model

    def start(self) -> None:
        """Run queued downloads one after another on a worker thread until :meth:`shutdown`."""
        with self._lock:
            if self._worker is not None:
                return
            self._stopping = False
            self._worker = threading.Thread(target=self._work, name="ember-downloads", daemon=True)
            self._worker.start()

    def shutdown(self, *, timeout: float | None = 10.0) -> None:
        """Pause the running download (partial files kept) and stop the worker thread."""
        with self._lock:
            self._stopping = True
            for dl_id in self._running:
                self._requests[dl_id] = DownloadState.PAUSED
            self._wake.notify_all()
            worker, self._worker = self._worker, None
        if worker is not None:
            worker.join(timeout)

    def _work(self) -> None:
        while True:
            with self._lock:
                while not self._stopping and self._next_queued() is None:
                    self._wake.wait()
                if self._stopping:
                    return
                next_id = self._next_queued()
                if next_id is None:
                    continue
                dl = self.get(next_id)
                self._claim(dl)  # with the query, under one lock: a pause or cancel can no longer slip in between
            try:
                self._run_claimed(dl, None)
            except EmberError as exc:  # recorded as the download's state; the queue goes on
                log.info("download %s ended: %s", next_id, exc)
            except Exception:  # a bug: logged and recorded as the download's failure; the queue goes on
                continue

    def _next_queued(self) -> int | None:
        return self._store.next_queued()

    # --- one file --------------------------------------------------------------------------------------------

    def _fetch(self, hub: HubClient, dl: Download, f: DownloadFile, meter: _Meter) -> None:
        """Download (or resume) one file into its partial file and check its sha256 (:func:`fetch_verified`)."""
        target = FileToFetch(repo_id=dl.repo_id, revision=dl.revision, path=f.path, size=f.size, sha256=f.sha256,
                             part=self._part(dl, f), dest=self._dest(dl, f), label=str(dl.id))
        fetch_verified(hub, target, self.transfer, check_stop=lambda: self._check_requests(dl.id),
                       on_start=lambda have: meter.start_file(f, have), on_bytes=meter.advance,
                       save_done=lambda done: self._store.save_done(f.id, done))

    def _install(self, dl: Download) -> LibraryModel:
        """Move verified files into the library and catalogue the model."""
        first: Path | None = None
        for f in dl.files:
            dest = self._dest(dl, f)
            dest.parent.mkdir(parents=True, exist_ok=True)
            part = self._part(dl, f)
            if part.exists() or not dest.exists():  # no partial: _fetch verified the file already in the library
                os.replace(part, dest)
            first = first or dest
        assert first is not None
        return self._library.add(first, name=dl.name or default_name(dl.model_file), repo_id=dl.repo_id,
                                 sha256=dl.files[0].sha256, filename=dl.model_file)

    # --- helpers ---------------------------------------------------------------------------------------------

    def _part(self, dl: Download, f: DownloadFile) -> Path:
        return self.library_dir / PARTIAL_DIR / f"{dl.id}-{f.idx}-{Path(f.path).name}.part"

    def _dest(self, dl: Download, f: DownloadFile) -> Path:
        return self.library_dir / dl.repo_id.replace("/", "--") / f.path

    def _remove_partials(self, dl: Download) -> None:
        for f in dl.files:
            self._part(dl, f).unlink(missing_ok=True)
            self._store.save_done(f.id, 0)

    def _check_requests(self, download_id: int) -> None:
        with self._lock:
            wanted = self._requests.get(download_id)
        if wanted is not None:
            raise DownloadStopped(f"Download {download_id} {wanted.value}.")

    def _set_state(self, download_id: int, state: DownloadState, error: str | None) -> None:
        self._store.set_state(download_id, state, error)

    def _fail(self, download_id: int, message: str, meter: _Meter) -> None:
        self._set_state(download_id, DownloadState.FAILED, message)
        meter.report(DownloadState.FAILED)

class _Meter:
    """Bytes, rate and ETA of one download across its files."""

    def __init__(self, dl: Download, callbacks: list[ProgressFn]) -> None:
        self._dl = dl
        self._callbacks = callbacks
        self._sizes = {f.idx: f.size for f in dl.files}
        self._before = 0  # bytes of the files before the current one
        self._file = dl.files[0] if dl.files else None
        self._done = 0
        self._samples: deque[tuple[float, int]] = deque()

    def start_file(self, f: DownloadFile, have: int) -> None:
        self._file = f
        self._before = sum(size for idx, size in self._sizes.items() if idx < f.idx)
        self._samples.clear()
        self.advance(have)

    def advance(self, have_in_file: int) -> None:
        self._done = self._before + have_in_file
        now = time.monotonic()
        self._samples.append((now, self._done))
        while len(self._samples) > 2 and now - self._samples[0][0] > RATE_WINDOW:
            self._samples.popleft()
        self.report(DownloadState.RUNNING)

    def report(self, state: DownloadState) -> None:
        if not self._callbacks:
            return
        t0, b0 = self._samples[0] if self._samples else (0.0, 0)
        t1, b1 = self._samples[-1] if self._samples else (0.0, 0)
        rate = (b1 - b0) / (t1 - t0) if t1 > t0 else 0.0
        total = self._dl.total
        eta = (total - self._done) / rate if rate > 0 else None
        progress = Progress(download_id=self._dl.id, state=state, done=self._done, total=total, rate=rate,
                            eta=eta, file=self._file.path if self._file else "")
        for cb in self._callbacks:
            cb(progress)
