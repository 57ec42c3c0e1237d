"""A local Hugging Face Hub for tests: the part of the Hub's HTTP protocol that a push and a download use.

No Hub-compatible server on PyPI accepts uploads, and huggingface_hub 2.x talks through httpx, which
`responses`-style mocks do not intercept. This stdlib server lets the real client run end to end:

    hub = LocalHub(tokens={"hf_secret": "someone"})
    with serve(hub) as url:     # e.g. http://127.0.0.1:40123; set HF_ENDPOINT=url before huggingface_hub is imported
        ...                     # create_repo, upload_folder, snapshot_download, pipeline(model="someone/x")
    hub.files("someone/x")      # what was committed, path -> bytes

Implemented (request and response shapes read from huggingface_hub 2.4: hf_api.py, _commit_api.py, lfs.py,
file_download.py, utils/_http.py): repo create (409 when it exists), model info (with `siblings`, `sha`), tree
listing, `POST /api/validate-yaml`, preupload, the NDJSON commit, the LFS basic transfer (batch, PUT, verify) and
`resolve` (GET/HEAD with `X-Repo-Commit`, `ETag`, and `X-Linked-Etag`/`X-Linked-Size` for LFS files).
Only model repos. Errors carry `X-Error-Code`/`X-Error-Message`, which the client turns into its own exceptions.
Access as on the Hub: an unknown token is refused everywhere (401); a private repo is "not found" to anyone but
its owner (401 without a token, 404 with another user's); only the owner writes.
Left unserved on purpose: `GET /api/agent-harnesses`, huggingface_hub's best-effort registry of coding agents (a 404
makes it give up; an answer would be cached in HF_HOME, the user's own when the client runs in the test process).
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import json
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, BinaryIO
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

INVALID_TOKEN = "Invalid credentials in Authorization header"  # the message the client singles out for 401s
LFS_MIN_SIZE = 10 * 1024 * 1024  # the Hub sends files this large through LFS whatever their name
# the start of the .gitattributes a new Hub repo is created with: its patterns decide what goes through LFS
GITATTRIBUTES = "".join(f"{pattern} filter=lfs diff=lfs merge=lfs -text\n" for pattern in (
    "*.bin", "*.ckpt", "*.h5", "*.msgpack", "*.npy", "*.npz", "*.onnx", "*.ot", "*.parquet", "*.pb", "*.pickle",
    "*.pkl", "*.pt", "*.pth", "*.safetensors", "*.tar.*", "*.tflite", "*.zip", "*tfevents*",
)).encode()


def git_blob_oid(data: bytes) -> str:
    """git's id of a blob: what the Hub's ETag, tree `oid` and preupload `oid` of a regular file are."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def utc_now() -> str:
    """The Hub's date format, which the client's parser expects ('...T...Z')."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class StoredFile:
    """A file in a commit. An LFS file is stored in git as a pointer; its ids are those of the pointer."""

    content: bytes
    lfs: bool

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()

    @property
    def pointer(self) -> bytes:
        spec = "version https://git-lfs.github.com/spec/v1"
        return f"{spec}\noid sha256:{self.sha256}\nsize {len(self.content)}\n".encode()

    @property
    def oid(self) -> str:
        return git_blob_oid(self.pointer if self.lfs else self.content)


@dataclass
class Commit:
    oid: str
    title: str
    files: dict[str, StoredFile]
    date: str = field(default_factory=utc_now)


@dataclass
class Repo:
    repo_id: str
    owner: str
    private: bool
    commits: list[Commit]  # oldest first; "main" is the last one
    created_at: str = field(default_factory=utc_now)

    def at(self, revision: str) -> Commit | None:
        """The commit a revision names: the branch "main" or a full commit id."""
        if revision == "main":
            return self.commits[-1]
        return next((c for c in self.commits if c.oid == revision), None)

    def is_lfs(self, path: str, size: int, sample: bytes) -> bool:
        """The Hub's choice: a .gitattributes pattern, binary content, or a large file."""
        attributes = self.commits[-1].files.get(".gitattributes")
        patterns = [line.split()[0] for line in (attributes.content.decode() if attributes else "").splitlines()
                    if "filter=lfs" in line]
        name = path.rsplit("/", 1)[-1]
        return size >= LFS_MIN_SIZE or b"\0" in sample or any(fnmatch.fnmatchcase(name, p) for p in patterns)


@dataclass
class Request:
    method: str
    path: str  # still percent-encoded: a revision or file name may contain an encoded "/"
    query: dict[str, list[str]]
    headers: Message
    body: bytes
    user: str | None  # the token's owner; None without a token

    def json(self) -> Any:
        return json.loads(self.body or b"{}")


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


def json_reply(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Reply:
    return Reply(status, json.dumps(payload).encode(), {"Content-Type": "application/json", **(headers or {})})


def error_reply(status: int, message: str, code: str | None = None, headers: dict[str, str] | None = None) -> Reply:
    """An error as the Hub sends it: the client reads X-Error-Code to pick RepositoryNotFoundError & co."""
    extra = {"X-Error-Message": message, **({"X-Error-Code": code} if code else {}), **(headers or {})}
    return json_reply({"error": message}, status, extra)


def front_matter_errors(content: str) -> list[str]:
    """What the Hub's card validation would reject in a README's YAML header (syntax, model-index shape)."""
    if not content.startswith("---"):
        return []
    header = content[3:].split("\n---", 1)[0]
    try:
        metadata = yaml.safe_load(header) or {}
    except yaml.YAMLError as err:
        return [f"invalid YAML: {err}"]
    if not isinstance(metadata, dict):
        return ["the metadata must be a mapping"]
    index = metadata.get("model-index", [])
    if not isinstance(index, list) or not all(isinstance(m, dict) and "name" in m and "results" in m for m in index):
        return ['"model-index" must be a list of {name, results}']
    return []


Route = tuple[tuple[str, ...], re.Pattern[str], str]
REPO = r"(?P<repo>[^/]+/[^/]+)"
ROUTES: list[Route] = [  # matched in order against the still-encoded path
    (("POST",), re.compile(r"/api/repos/create"), "create_repo"),
    (("POST",), re.compile(r"/api/validate-yaml"), "validate_yaml"),
    (("GET",), re.compile(rf"/api/models/{REPO}(?:/revision/(?P<rev>[^/]+))?"), "model_info"),
    (("GET",), re.compile(rf"/api/models/{REPO}/tree/(?P<rev>[^/]+)(?:/(?P<path>.+))?"), "tree"),
    (("POST",), re.compile(rf"/api/models/{REPO}/preupload/(?P<rev>[^/]+)"), "preupload"),
    (("POST",), re.compile(rf"/api/models/{REPO}/commit/(?P<rev>[^/]+)"), "commit"),
    (("POST",), re.compile(rf"/{REPO}\.git/info/lfs/objects/batch"), "lfs_batch"),
    (("POST",), re.compile(rf"/{REPO}\.git/info/lfs/objects/verify"), "lfs_verify"),
    (("PUT",), re.compile(r"/lfs-storage/(?P<oid>[0-9a-f]{64})"), "lfs_put"),
    (("GET", "HEAD"), re.compile(rf"/{REPO}/resolve/(?P<rev>[^/]+)/(?P<path>.+)"), "resolve"),
]


class LocalHub:
    """The Hub's state (users, repos, LFS storage) and its endpoints; thread-safe, in memory.

    tokens: token -> user name. fail_status: answer every request with this status (a Hub that is down).
    """

    def __init__(self, tokens: dict[str, str], fail_status: int | None = None):
        self.tokens = dict(tokens)
        self.fail_status = fail_status
        self.base_url = ""  # set by serve() once the port is known: upload URLs point back here
        self.repos: dict[str, Repo] = {}
        self.lfs_objects: dict[str, bytes] = {}  # sha256 -> content: the "S3" behind the LFS batch API
        self.requests: list[tuple[str, str, int]] = []  # (method, path, status), in arrival order
        self.lock = threading.Lock()
        self._commits = 0

    # ------------------------------------------------------------------ what tests read

    def files(self, repo_id: str, revision: str = "main") -> dict[str, bytes]:
        commit = self.repos[repo_id].at(revision)
        return {path: f.content for path, f in commit.files.items()}

    def lfs_paths(self, repo_id: str) -> set[str]:
        return {path for path, f in self.repos[repo_id].commits[-1].files.items() if f.lfs}

    # ------------------------------------------------------------------ dispatch and access

    def handle(self, method: str, target: str, headers: Message, body: bytes) -> Reply:
        """Route one request; every request is logged with its status."""
        parts = urlsplit(target)
        reply = self._dispatch(method, parts.path, parse_qs(parts.query), headers, body)
        with self.lock:
            self.requests.append((method, parts.path, reply.status))
        return reply

    def _dispatch(self, method: str, path: str, query: dict, headers: Message, body: bytes) -> Reply:
        if self.fail_status is not None:
            return error_reply(self.fail_status, "the local Hub is down (as configured)")
        token = (headers.get("Authorization") or "").removeprefix("Bearer ").strip() or None
        if token is not None and token not in self.tokens:
            return error_reply(401, INVALID_TOKEN)
        request = Request(method, path, query, headers, body, self.tokens.get(token) if token else None)
        for methods, pattern, name in ROUTES:
            match = pattern.fullmatch(path)
            if match and method in methods:
                params = {key: unquote(value) for key, value in match.groupdict().items() if value is not None}
                handler: Callable[..., Reply] = getattr(self, name)
                return handler(request, **params)
        return error_reply(404, f"the local Hub does not serve {method} {path}")

    def _readable(self, request: Request, repo_id: str, revision: str) -> tuple[Repo, Commit] | Reply:
        """The repo and commit, or the Hub's refusal: a private repo is "not found" to anyone but its owner."""
        repo = self.repos.get(repo_id)
        if repo is None or (repo.private and request.user != repo.owner):
            status = 401 if request.user is None else 404  # the Hub answers 401 to anonymous requests
            return error_reply(status, "Repository not found", "RepoNotFound")
        commit = repo.at(revision)
        if commit is None:
            return error_reply(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        return repo, commit

    def _writable(self, request: Request, repo_id: str, revision: str = "main") -> tuple[Repo, Commit] | Reply:
        found = self._readable(request, repo_id, revision)
        if isinstance(found, Reply):
            return found
        if request.user != found[0].owner:
            return error_reply(403, f"You don't have the rights to write to {repo_id}")
        if revision != "main":
            return error_reply(400, "the local Hub commits to main only")
        return found

    # ------------------------------------------------------------------ repos and cards

    def create_repo(self, request: Request) -> Reply:
        """POST /api/repos/create {name, organization, visibility}; 409 (with the url) when it exists."""
        if request.user is None:
            return error_reply(401, "You must be authenticated to create a repo")
        payload = request.json()
        namespace = payload.get("organization") or request.user
        if namespace != request.user:
            return error_reply(403, f"You don't have the rights to create a repo under {namespace}")
        if payload.get("type", "model") != "model":
            return error_reply(400, "the local Hub hosts model repos only")
        repo_id = f"{namespace}/{payload['name']}"
        url = f"{self.base_url}/{repo_id}"
        with self.lock:
            if repo_id in self.repos:
                return json_reply({"error": "You already created this model repo", "url": url}, 409)
            first = Commit(self._new_oid(), "initial commit", {".gitattributes": StoredFile(GITATTRIBUTES, False)})
            private = payload.get("visibility") == "private"
            self.repos[repo_id] = Repo(repo_id, request.user, private, [first])
        return json_reply({"url": url, "name": repo_id, "id": repo_id})

    def model_info(self, request: Request, repo: str, rev: str = "main") -> Reply:
        """GET /api/models/{repo}[/revision/{rev}]: `sha` and `siblings` (with sizes and LFS ids if ?blobs)."""
        found = self._readable(request, repo, rev)
        if isinstance(found, Reply):
            return found
        stored, commit = found
        blobs = bool(request.query.get("blobs"))
        siblings = [{"rfilename": path, **(self._blob_info(f) if blobs else {})}
                    for path, f in sorted(commit.files.items())]
        return json_reply({
            "_id": hashlib.md5(repo.encode()).hexdigest()[:24], "id": repo, "modelId": repo,
            "author": stored.owner, "sha": commit.oid, "lastModified": commit.date, "createdAt": stored.created_at,
            "private": stored.private, "disabled": False, "gated": False, "downloads": 0, "likes": 0, "tags": [],
            "siblings": siblings,
        })

    @staticmethod
    def _blob_info(stored: StoredFile) -> dict[str, Any]:
        lfs = {"sha256": stored.sha256, "size": len(stored.content), "pointerSize": len(stored.pointer)}
        return {"size": len(stored.content), "blobId": stored.oid, **({"lfs": lfs} if stored.lfs else {})}

    def tree(self, request: Request, repo: str, rev: str, path: str = "") -> Reply:
        """GET /api/models/{repo}/tree/{rev}[/{path}]?recursive=: files and folders under path."""
        found = self._readable(request, repo, rev)
        if isinstance(found, Reply):
            return found
        files = found[1].files
        folders = {"/".join(p.split("/")[:i]) for p in files for i in range(1, p.count("/") + 1)}
        if path and path not in folders:
            return error_reply(404, f"{path} does not exist on main", "EntryNotFound")
        prefix = f"{path}/" if path else ""
        recursive = request.query.get("recursive", ["false"])[0].lower() == "true"
        entries = []
        for name in sorted(folders | set(files)):
            if not name.startswith(prefix) or (not recursive and "/" in name[len(prefix):]):
                continue
            if name in folders:
                entries.append({"type": "directory", "oid": git_blob_oid(name.encode()), "size": 0, "path": name})
            else:
                stored = files[name]
                lfs = {"oid": stored.sha256, "size": len(stored.content), "pointerSize": len(stored.pointer)}
                entries.append({"type": "file", "oid": stored.oid, "size": len(stored.content), "path": name,
                                **({"lfs": lfs} if stored.lfs else {})})
        return json_reply(entries)

    def validate_yaml(self, request: Request) -> Reply:
        """POST /api/validate-yaml {content, repoType}: the card's metadata is checked before any upload."""
        errors = front_matter_errors(request.json().get("content", ""))
        return json_reply({"errors": [{"message": e} for e in errors], "warnings": []}, 400 if errors else 200)

    # ------------------------------------------------------------------ upload: preupload, LFS, commit

    def preupload(self, request: Request, repo: str, rev: str) -> Reply:
        """POST .../preupload/{rev} {files: [{path, sample, size}]}: LFS or regular, and the oid already there."""
        found = self._writable(request, repo, rev)
        if isinstance(found, Reply):
            return found
        stored, head = found
        answers = []
        for item in request.json()["files"]:
            lfs = stored.is_lfs(item["path"], item["size"], base64.b64decode(item["sample"]))
            current = head.files.get(item["path"])
            # the client skips a file whose oid it matches: sha256 for LFS, the git blob id otherwise
            oid = None if current is None else (current.sha256 if current.lfs else current.oid)
            answers.append({"path": item["path"], "uploadMode": "lfs" if lfs else "regular",
                            "shouldIgnore": False, "oid": oid})
        return json_reply({"files": answers})

    def lfs_batch(self, request: Request, repo: str) -> Reply:
        """POST /{repo}.git/info/lfs/objects/batch: where to PUT each object (none if it is stored already)."""
        found = self._writable(request, repo)
        if isinstance(found, Reply):
            return found
        payload = request.json()
        if payload.get("operation") != "upload" or "basic" not in payload.get("transfers", ["basic"]):
            return error_reply(400, "the local Hub offers the basic upload transfer only")
        objects = []
        for item in payload["objects"]:
            answer = {"oid": item["oid"], "size": item["size"], "authenticated": True}
            if item["oid"] not in self.lfs_objects:
                answer["actions"] = {"upload": {"href": f"{self.base_url}/lfs-storage/{item['oid']}"},
                                     "verify": {"href": f"{self.base_url}/{repo}.git/info/lfs/objects/verify"}}
            objects.append(answer)
        return json_reply({"transfer": "basic", "objects": objects}, headers={
            "Content-Type": "application/vnd.git-lfs+json"})

    def lfs_put(self, request: Request, oid: str) -> Reply:
        """PUT /lfs-storage/{sha256}: the storage behind a presigned URL, so no token; the content must match."""
        if hashlib.sha256(request.body).hexdigest() != oid:
            return error_reply(400, "the content does not match its sha256")
        with self.lock:
            self.lfs_objects[oid] = request.body
        return Reply(200, headers={"ETag": f'"{oid}"'})

    def lfs_verify(self, request: Request, repo: str) -> Reply:
        """POST /{repo}.git/info/lfs/objects/verify {oid, size}: the upload arrived whole."""
        found = self._writable(request, repo)
        if isinstance(found, Reply):
            return found
        payload = request.json()
        content = self.lfs_objects.get(payload["oid"])
        if content is None or len(content) != payload["size"]:
            return error_reply(404, f"LFS object {payload['oid']} was not uploaded whole")
        return json_reply({"success": True})

    def commit(self, request: Request, repo: str, rev: str) -> Reply:
        """POST .../commit/{rev}: NDJSON lines, a header then file / lfsFile / deletedFile / deletedFolder."""
        found = self._writable(request, repo, rev)
        if isinstance(found, Reply):
            return found
        stored, head = found
        lines = [json.loads(line) for line in request.body.splitlines() if line.strip()]
        header = next((line["value"] for line in lines if line["key"] == "header"), None)
        if header is None:
            return error_reply(400, "a commit starts with a header line")
        if header.get("parentCommit") not in (None, head.oid):
            return error_reply(412, "A commit has happened since the parent commit")
        files = dict(head.files)
        for line in lines:
            problem = self._apply(files, line["key"], line["value"])
            if problem:
                return error_reply(422 if "LFS" in problem else 400, problem)
        with self.lock:
            commit = Commit(self._new_oid(), header["summary"], files)
            stored.commits.append(commit)
        return json_reply({"success": True, "commitOid": commit.oid, "hookOutput": "",
                           "commitUrl": f"{self.base_url}/{repo}/commit/{commit.oid}"})

    def _apply(self, files: dict[str, StoredFile], key: str, value: dict[str, Any]) -> str | None:
        """Apply one commit line to `files`; the reason it cannot be applied, if any."""
        if key == "file":
            files[value["path"]] = StoredFile(base64.b64decode(value["content"]), lfs=False)
        elif key == "lfsFile":
            content = self.lfs_objects.get(value["oid"])
            if content is None:
                return f"LFS object {value['oid']} ({value['path']}) was never uploaded"
            files[value["path"]] = StoredFile(content, lfs=True)
        elif key == "deletedFile":
            if files.pop(value["path"], None) is None:
                return f"A file with this name doesn't exist: {value['path']}"
        elif key == "deletedFolder":
            for path in [p for p in files if p.startswith(value["path"].rstrip("/") + "/")]:
                del files[path]
        elif key != "header":
            return f"unknown commit line {key!r}"
        return None

    def _new_oid(self) -> str:
        self._commits += 1
        return hashlib.sha1(f"local-hub-commit-{id(self)}-{self._commits}".encode()).hexdigest()

    # ------------------------------------------------------------------ download

    def resolve(self, request: Request, repo: str, rev: str, path: str) -> Reply:
        """GET/HEAD /{repo}/resolve/{rev}/{path}: the file, with the headers hf_hub_download caches by."""
        found = self._readable(request, repo, rev)
        if isinstance(found, Reply):
            return found
        commit = found[1]
        stored = commit.files.get(path)
        if stored is None:  # the commit header lets the client cache "this file does not exist"
            return error_reply(404, "Entry not found", "EntryNotFound", {"X-Repo-Commit": commit.oid})
        headers = {"X-Repo-Commit": commit.oid, "ETag": f'"{stored.oid}"', "Content-Type": "application/octet-stream"}
        if stored.lfs:  # the client names the cached blob after the linked etag: the content's sha256
            headers |= {"X-Linked-Etag": f'"{stored.sha256}"', "X-Linked-Size": str(len(stored.content))}
        return Reply(200, stored.content, headers)


def read_body(stream: BinaryIO, headers: Message) -> bytes:
    """The whole request body, sized or chunked (httpx streams file uploads in chunks). Always read it:
    on a kept-alive connection an unread body would be parsed as the next request."""
    if "chunked" not in (headers.get("Transfer-Encoding") or "").lower():
        return stream.read(int(headers.get("Content-Length") or 0))
    chunks = []
    while size := int(stream.readline().split(b";")[0].strip() or b"0", 16):
        chunks.append(stream.read(size))
        stream.readline()  # the CRLF closing the chunk
    while stream.readline() not in (b"\r\n", b"\n", b""):  # optional trailers, then the final CRLF
        pass
    return b"".join(chunks)


class HubRequestHandler(BaseHTTPRequestHandler):
    """Reads each request whole and hands it to the server's LocalHub."""

    protocol_version = "HTTP/1.1"  # keep-alive, as huggingface_hub's pooled client expects
    server: HubHTTPServer

    def _handle(self) -> None:
        body = read_body(self.rfile, self.headers)
        reply = self.server.hub.handle(self.command, self.path, self.headers, body)
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))  # HEAD too: the size of what GET would send
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(reply.body)

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = _handle

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: LocalHub.requests keeps the log."""


class HubHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, hub: LocalHub):
        super().__init__(("127.0.0.1", 0), HubRequestHandler)  # port 0: a free port
        self.hub = hub


@contextmanager
def serve(hub: LocalHub) -> Iterator[str]:
    """Run `hub` on a free local port in a thread; yields its URL (for HF_ENDPOINT) and stops it after."""
    server = HubHTTPServer(hub)
    hub.base_url = f"http://127.0.0.1:{server.server_address[1]}"
    # a short poll interval: shutdown() waits for it, once per test
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="local-hub", daemon=True)
    thread.start()
    try:
        yield hub.base_url
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
