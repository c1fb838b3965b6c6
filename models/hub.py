"""The Hugging Face Hub as Ember uses it: search GGUF repositories, list their files, read a remote GGUF header.

Every call goes through the real ``huggingface_hub`` client (``HfApi`` and its HTTP session) against
``endpoint`` (default: ``$HF_ENDPOINT``, else https://huggingface.co). Hub failures become Ember's known errors
with a message that says what to do.
"""

from __future__ import annotations

import contextlib
import os
import re
from dataclasses import dataclass
from typing import Iterator, Literal
from urllib.parse import quote

import httpx2
from huggingface_hub import HfApi, get_hf_file_metadata
from huggingface_hub.errors import (
    EntryNotFoundError,
    GatedRepoError,
    HfHubHTTPError,
    OfflineModeIsEnabled,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status

from models.errors import HubAccessError, HubError, HubNotFoundError
from models.gguf import GGUFInfo, read_gguf_stream
from models.quant import ModelFiles, RemoteFile, group_files

DEFAULT_ENDPOINT = "https://huggingface.co"
TOKEN_SECRET = "hf-token"
# A GGUF header (metadata with the vocabulary, then the tensor table) is rarely over a few MiB; this caps the
# ranged read used to learn a model's shape before downloading it.
HEADER_READ_LIMIT = 64 << 20

SortKey = Literal["downloads", "likes", "recent", "trending"]
_SORTS = {"downloads": "downloads", "likes": "likes", "recent": "last_modified", "trending": "trending_score"}
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class RepoSummary:
    """One search hit: a model repository on the Hub."""

    repo_id: str
    downloads: int | None = None
    likes: int | None = None
    last_modified: str | None = None
    gated: bool = False
    private: bool = False


@dataclass(frozen=True)
class RepoFiles:
    """A repository's GGUF models at one commit."""

    repo_id: str
    commit: str
    models: list[ModelFiles]
    gated: bool = False


@dataclass(frozen=True)
class FileMetadata:
    """What the ``resolve`` endpoint says about one file: commit, sha256 (from the LFS etag) and size."""

    commit: str | None
    sha256: str | None
    size: int | None


class HubClient:
    """Search, listing, file metadata and header reads against one Hub endpoint, with one optional token."""

    def __init__(self, *, endpoint: str | None = None, token: str | None = None, timeout: float = 30.0) -> None:
        """
        Args:
            endpoint: the Hub's base URL (default ``$HF_ENDPOINT``, else https://huggingface.co).
            token: a Hub access token for gated and private repositories (None: huggingface_hub's own login,
                if any).
            timeout: seconds to wait for the Hub on each request.
        """
        self.endpoint = (endpoint or os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")
        self.token = token
        self.timeout = timeout
        self._api = HfApi(endpoint=self.endpoint, token=token)

    # --- queries ---------------------------------------------------------------------------------------------

    def search(self, query: str = "", *, sort: SortKey = "downloads", limit: int = 20,
               offset: int = 0) -> list[RepoSummary]:
        """GGUF model repositories whose id contains ``query``, most popular (or liked, or recent) first.

        Args:
            query: text the repository id must contain ('' for all).
            sort: ``downloads``, ``likes``, ``recent`` or ``trending``.
            limit: at most this many results.
            offset: skip this many results first (page 2 of 20 is ``offset=20``).

        Raises:
            HubError: the Hub cannot be reached.
        """
        if sort not in _SORTS:
            raise ValueError(f"unknown sort {sort!r}; use one of {', '.join(_SORTS)}")
        with self._errors("search"):
            hits = self._api.list_models(search=query or None, filter="gguf", sort=_SORTS[sort],  # type: ignore
                                         limit=offset + limit)
            found = list(hits)[offset:]
        return [
            RepoSummary(repo_id=m.id, downloads=m.downloads, likes=m.likes,
                        last_modified=m.last_modified.isoformat() if m.last_modified else None,
                        gated=bool(m.gated), private=bool(m.private))
            for m in found
        ]

    def files(self, repo_id: str, *, revision: str = "main") -> RepoFiles:
        """The GGUF models of a repository (shards grouped) with sizes and sha256, pinned to its current commit.

        Raises:
            HubNotFoundError: no such repository or revision.
            HubAccessError: the repository is private and the token cannot see it.
            HubError: the Hub cannot be reached.
        """
        with self._errors(repo_id):
            info = self._api.model_info(repo_id, revision=revision)
            commit = info.sha or revision
            tree = self._api.list_repo_tree(repo_id, recursive=True, revision=commit)
            files = [
                RemoteFile(path=e.path, size=e.lfs.size if getattr(e, "lfs", None) else getattr(e, "size", None),
                           sha256=e.lfs.sha256 if getattr(e, "lfs", None) else None)
                for e in tree if hasattr(e, "size")
            ]
        return RepoFiles(repo_id=repo_id, commit=commit, models=group_files(files), gated=bool(info.gated))

    def file_url(self, repo_id: str, filename: str, *, revision: str = "main") -> str:
        """The ``resolve`` URL that serves a file (redirecting to the CDN for large files)."""
        return f"{self.endpoint}/{repo_id}/resolve/{quote(revision, safe='')}/{quote(filename)}"

    def file_metadata(self, repo_id: str, filename: str, *, revision: str = "main") -> FileMetadata:
        """HEAD the file: checks access before any byte is downloaded, and returns its commit, sha256 and size.

        Raises:
            HubAccessError: gated or private and the token has no access.
            HubNotFoundError: no such file.
            HubError: the Hub cannot be reached.
        """
        with self._errors(repo_id, filename):
            meta = get_hf_file_metadata(self.file_url(repo_id, filename, revision=revision), token=self.token,
                                        timeout=self.timeout, endpoint=self.endpoint, retry_on_errors=True)
        etag = (meta.etag or "").lower()
        return FileMetadata(commit=meta.commit_hash, sha256=etag if _SHA256.match(etag) else None, size=meta.size)

    def read_header(self, repo_id: str, filename: str, *, revision: str = "main",
                    limit: int = HEADER_READ_LIMIT) -> tuple[GGUFInfo, int]:
        """Read a remote GGUF file's header with one ranged request, stopping as soon as the header is parsed.

        Returns:
            The header (metadata and tensor table) and the number of bytes read.

        Raises:
            ModelFileError: the remote file is not GGUF or its header is larger than ``limit``.
            HubAccessError, HubNotFoundError, HubError: as for :meth:`file_metadata`.
        """
        url = self.file_url(repo_id, filename, revision=revision)
        headers = {**self.headers(), "Range": f"bytes=0-{limit - 1}"}
        with self._errors(repo_id, filename):
            with self.stream(url, headers=headers) as resp:
                hf_raise_for_status(resp)
                body = _ResponseReader(resp.iter_bytes(1 << 16))
                info = read_gguf_stream(body, what=f"The remote file {repo_id}/{filename}")
        return info, body.consumed

    # --- plumbing shared with the download manager -----------------------------------------------------------

    def headers(self) -> dict[str, str]:
        """Request headers for file downloads (user agent, and the token when one is set)."""
        return build_hf_headers(token=self.token)

    @contextlib.contextmanager
    def stream(self, url: str, *, headers: dict[str, str]) -> Iterator[httpx2.Response]:
        """A streamed GET that follows redirects (to the CDN); the caller checks the status."""
        timeout = httpx2.Timeout(self.timeout, read=self.timeout)
        with get_session().stream("GET", url, headers=headers, follow_redirects=True, timeout=timeout) as resp:
            yield resp

    @contextlib.contextmanager
    def errors(self, repo_id: str, filename: str | None = None) -> Iterator[None]:
        """Turn ``huggingface_hub`` and network exceptions raised inside into Ember's known Hub errors."""
        with self._errors(repo_id, filename):
            yield

    @contextlib.contextmanager
    def _errors(self, repo_id: str, filename: str | None = None) -> Iterator[None]:
        what = f"{repo_id}/{filename}" if filename else repo_id
        page = f"{self.endpoint}/{repo_id}"
        try:
            yield
        except GatedRepoError as exc:
            if self.token:
                msg = (f"Your Hub token has no access to the gated repository {repo_id}. Open {page}, accept its "
                       "conditions with the account the token belongs to, then try again.")
            else:
                msg = (f"{repo_id} is a gated repository and Ember has no Hub token. Accept its conditions on "
                       f"{page}, create a read token in your Hub settings and store it with `ember models login` "
                       f"(or set EMBER_SECRET_HF_TOKEN), then try again.")
            raise HubAccessError(msg) from exc
        except (RemoteEntryNotFoundError, EntryNotFoundError) as exc:
            raise HubNotFoundError(f"The Hub has no file {what}. Run `ember models files {repo_id}` to see "
                                   "the files it has.") from exc
        except RevisionNotFoundError as exc:
            raise HubNotFoundError(f"{repo_id} has no such revision on the Hub. Check the revision name.") from exc
        except RepositoryNotFoundError as exc:
            hint = ("" if self.token else " If it is private, store a Hub token with `ember models login`.")
            raise HubNotFoundError(f"The Hub has no repository {repo_id} that Ember can see. Check the "
                                   f"name (owner/name), e.g. with `ember models search`.{hint}") from exc
        except HfHubHTTPError as exc:
            status = exc.response.status_code if exc.response is not None else "?"
            if status in (401, 403):
                raise HubAccessError(f"The Hub refused access to {what} (HTTP {status}). Check your Hub token "
                                     "(`ember models login`) and that it may read this repository.") from exc
            raise HubError(f"The Hub answered HTTP {status} for {what}. Try again later.") from exc
        except OfflineModeIsEnabled as exc:
            raise HubError("The Hub is not used because HF_HUB_OFFLINE is set. Unset it to search or "
                           "download.") from exc
        except httpx2.TransportError as exc:
            raise HubError(f"Cannot reach the Hub at {self.endpoint} ({type(exc).__name__}: {exc}). Check the "
                           "network connection (or HF_ENDPOINT) and try again.") from exc


class _ResponseReader:
    """A ``read(n)`` view of a streamed HTTP body, so the GGUF reader pulls only the bytes it needs."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buf = bytearray()
        self.consumed = 0

    def read(self, n: int) -> bytes:
        while len(self._buf) < n:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._buf += chunk
            self.consumed += len(chunk)
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out
