"""A local stand-in for the Hugging Face Hub: the endpoints Ember uses, for the real ``huggingface_hub`` client.

The Hub answers on ``127.0.0.1:PORT``; large files redirect to a "CDN" on ``localhost:PORT`` (another host to the
client, so it stops there and reads ``X-Linked-Etag``/``X-Linked-Size`` from the redirect, as with the real Hub).
Endpoints: ``GET /api/models`` (search, Link-header pagination), ``GET /api/models/{repo}/revision/{rev}``,
``GET /api/models/{repo}/tree/{rev}``, ``HEAD|GET /{repo}/resolve/{rev}/{file}`` and ``HEAD|GET /cdn/...`` with
Range. Faults: drop the connection mid-file, throttle, a wrong recorded sha256, a gated repo (401 GatedRepo).
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator
from urllib.parse import parse_qs, quote, unquote, urlencode, urlparse

import pytest

PAGE_SIZE = 3
GOOD_TOKEN = "hf_good_token"


@dataclass
class FakeRepo:
    """One model repository: files by path, plus popularity and access flags."""

    repo_id: str
    files: dict[str, bytes]
    downloads: int = 0
    likes: int = 0
    gated: bool = False
    commit: str = ""
    wrong_sha: set[str] = field(default_factory=set)  # files whose recorded sha256 is wrong

    def __post_init__(self) -> None:
        self.commit = self.commit or hashlib.sha1(self.repo_id.encode()).hexdigest()

    def sha256(self, path: str) -> str:
        if path in self.wrong_sha:
            return "0" * 64
        return hashlib.sha256(self.files[path]).hexdigest()


class FakeHub:
    """The server's state: repositories, fault switches and what it served."""

    def __init__(self) -> None:
        self.repos: dict[str, FakeRepo] = {}
        self.drops: dict[str, list[int]] = {}  # path -> bytes to send before dropping, one entry per GET
        self.throttle = 0.0  # seconds to sleep per 64 KiB chunk of file data
        self.served: dict[str, int] = {}  # path -> file bytes sent
        self.requests: list[tuple[str, str, str | None]] = []  # (method, path, Range)
        self.lock = threading.Lock()
        self._server = _QuietServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.cdn = f"http://localhost:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    def add(self, repo: FakeRepo) -> FakeRepo:
        self.repos[repo.repo_id] = repo
        return repo

    def start(self) -> "FakeHub":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def file_gets(self, path: str) -> list[str | None]:
        """The Range header of each CDN GET of ``path``."""
        return [rng for method, p, rng in self.requests if method == "GET" and p.endswith("/" + path)
                and p.startswith("/cdn/")]


def _handler(hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_HEAD(self) -> None:
            self._route(head=True)

        def do_GET(self) -> None:
            self._route(head=False)

        # --- routing -----------------------------------------------------------------------------------------

        def _route(self, *, head: bool) -> None:
            url = urlparse(self.path)
            path = unquote(url.path)
            with hub.lock:
                hub.requests.append((self.command, path, self.headers.get("Range")))
            query = parse_qs(url.query)
            parts = path.strip("/").split("/")
            if path.startswith("/cdn/"):
                return self._cdn(parts[1] + "/" + parts[2], "/".join(parts[3:]), head=head)
            if path == "/api/models":
                return self._search(query)
            if parts[:2] == ["api", "models"] and len(parts) >= 5:
                repo = hub.repos.get(parts[2] + "/" + parts[3])
                if repo is None:
                    return self._error(401, "RepoNotFound", "Repository not found")
                if parts[4] == "revision":
                    return self._info(repo)
                if parts[4] == "tree":
                    return self._tree(repo)
            if len(parts) >= 5 and parts[2] == "resolve":
                repo = hub.repos.get(parts[0] + "/" + parts[1])
                if repo is None:
                    return self._error(401, "RepoNotFound", "Repository not found")
                return self._resolve(repo, "/".join(parts[4:]), head=head)
            self._error(404, None, "not found")

        # --- API ---------------------------------------------------------------------------------------------

        def _search(self, query: dict[str, list[str]]) -> None:
            text = (query.get("search") or [""])[0].lower()
            sort = (query.get("sort") or ["downloads"])[0]
            limit = int((query.get("limit") or ["1000"])[0])
            cursor = int((query.get("cursor") or ["0"])[0])
            hits = [r for r in hub.repos.values() if text in r.repo_id.lower()]
            key = {"likes": lambda r: r.likes}.get(sort, lambda r: r.downloads)
            hits.sort(key=key, reverse=True)
            page = hits[cursor: cursor + min(limit, PAGE_SIZE)]
            headers = {}
            if cursor + len(page) < len(hits):
                nxt = dict((k, v[0]) for k, v in query.items())
                nxt["cursor"] = str(cursor + len(page))
                headers["Link"] = f'<{hub.endpoint}/api/models?{urlencode(nxt)}>; rel="next"'
            self._json([self._summary(r) for r in page], headers=headers)

        def _summary(self, r: FakeRepo) -> dict:
            return {"_id": r.commit[:24], "id": r.repo_id, "modelId": r.repo_id, "downloads": r.downloads,
                    "likes": r.likes, "private": False, "gated": "manual" if r.gated else False,
                    "tags": ["gguf"], "lastModified": "2026-10-01T00:00:00.000Z", "library_name": "gguf"}

        def _info(self, r: FakeRepo) -> None:
            siblings = [{"rfilename": p, "size": len(b), "blobId": hashlib.sha1(b).hexdigest(),
                         **({"lfs": {"sha256": r.sha256(p), "size": len(b), "pointerSize": 134}}
                            if p.endswith(".gguf") else {})} for p, b in r.files.items()]
            self._json({**self._summary(r), "sha": r.commit, "siblings": siblings})

        def _tree(self, r: FakeRepo) -> None:
            entries = [{"type": "file", "oid": hashlib.sha1(b).hexdigest(), "size": len(b), "path": p,
                        **({"lfs": {"oid": r.sha256(p), "size": len(b), "pointerSize": 134}}
                           if p.endswith(".gguf") else {})} for p, b in r.files.items()]
            self._json(entries)

        def _resolve(self, r: FakeRepo, filename: str, *, head: bool) -> None:
            if r.gated and self.headers.get("Authorization") != f"Bearer {GOOD_TOKEN}":
                return self._error(401, "GatedRepo", "Access to this model is restricted.")
            if filename not in r.files:
                return self._error(404, "EntryNotFound", "Entry not found")
            data = r.files[filename]
            self.send_response(302)
            self.send_header("Location", f"{hub.cdn}/cdn/{r.repo_id}/{quote(filename)}")
            self.send_header("X-Repo-Commit", r.commit)
            self.send_header("X-Linked-Etag", f'"{r.sha256(filename)}"')
            self.send_header("X-Linked-Size", str(len(data)))
            self.send_header("ETag", f'"{hashlib.sha1(data).hexdigest()}"')
            self.send_header("Content-Length", "0")
            self.end_headers()

        # --- the CDN -----------------------------------------------------------------------------------------

        def _cdn(self, repo_id: str, filename: str, *, head: bool) -> None:
            r = hub.repos.get(repo_id)
            if r is None or filename not in r.files:
                return self._error(404, None, "no such object")
            data = r.files[filename]
            start, status = 0, 200
            rng = self.headers.get("Range")
            end = len(data) - 1
            if rng and rng.startswith("bytes="):
                first, _, last = rng[len("bytes="):].partition("-")
                start = int(first)
                end = min(int(last), end) if last else end
                if start >= len(data):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                status = 206
            body = data[start:end + 1]
            self.send_response(status)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("ETag", f'"{r.sha256(filename)}"')
            self.send_header("Content-Length", str(len(body)))
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
            self.end_headers()
            if head:
                return
            with hub.lock:
                drops = hub.drops.get(filename)
                limit = drops.pop(0) if drops else None
            sent = 0
            for chunk in _chunks(body, 1 << 16):
                if limit is not None and sent + len(chunk) > limit:
                    chunk = chunk[: limit - sent]
                try:
                    self.wfile.write(chunk)
                    self.wfile.flush()
                except OSError:
                    break
                sent += len(chunk)
                with hub.lock:
                    hub.served[filename] = hub.served.get(filename, 0) + len(chunk)
                if limit is not None and sent >= limit:
                    self.close_connection = True
                    return
                if hub.throttle:
                    time.sleep(hub.throttle)

        # --- helpers -----------------------------------------------------------------------------------------

        def _json(self, payload: object, *, headers: dict[str, str] | None = None) -> None:
            raw = json.dumps(payload).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(raw)

        def _error(self, status: int, code: str | None, message: str) -> None:
            raw = json.dumps({"error": message}).encode()
            self.send_response(status)
            if code:
                self.send_header("X-Error-Code", code)
            self.send_header("X-Error-Message", message)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(raw)

    return Handler


class _QuietServer(ThreadingHTTPServer):
    """Clients that hang up early (a header read, a cancelled download) are normal here, not errors."""

    def handle_error(self, request: object, client_address: object) -> None:
        pass


def _chunks(data: bytes, size: int) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i:i + size]


@pytest.fixture
def fake_hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[FakeHub]:
    """A running fake Hub with ``HF_ENDPOINT`` pointing at it and no ambient Hub token or proxy."""
    hub = FakeHub().start()
    monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    for var in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_OFFLINE", "EMBER_SECRET_HF_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_HUB_DISABLE_IMPLICIT_TOKEN", "1")
    yield hub
    hub.stop()
