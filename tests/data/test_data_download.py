"""The LLM-jp downloader against a real HTTP server on 127.0.0.1 (never the internet)."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import socket
import threading

import pytest

from jpqwen.data import sources
from jpqwen.data.download import RemoteFile, download
from jpqwen.errors import InputError, OfflineError

PAYLOAD = gzip.compress(("\n".join(f'{{"id": {i}, "text": "灯台{i}"}}' for i in range(4000)) + "\n").encode(), mtime=0)
SHA = hashlib.sha256(PAYLOAD).hexdigest()


class RangeServer(http.server.ThreadingHTTPServer):
    """Serves PAYLOAD with HTTP Range; can cut the first response mid-body."""

    cut_first_at: int | None = None
    requests: list[str | None]


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):  # keep test output clean
        pass

    def do_GET(self):
        srv: RangeServer = self.server  # type: ignore[assignment]
        rng = self.headers.get("Range")
        srv.requests.append(rng)
        start = int(rng.split("=")[1].split("-")[0]) if rng else 0
        body = PAYLOAD[start:]
        self.send_response(206 if rng else 200)
        if rng:
            self.send_header("Content-Range", f"bytes {start}-{len(PAYLOAD) - 1}/{len(PAYLOAD)}")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if srv.cut_first_at is not None and len(srv.requests) == 1:
            self.wfile.write(body[: srv.cut_first_at])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)  # the connection drops mid-file
            return
        self.wfile.write(body)


@pytest.fixture
def server():
    srv = RangeServer(("127.0.0.1", 0), Handler)
    srv.requests = []
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _url(srv) -> str:
    return f"http://127.0.0.1:{srv.server_address[1]}/ja_wiki/train_0.jsonl.gz?ref_type=heads"


def test_download_resumes_after_a_cut_connection(server, tmp_path):
    server.cut_first_at = len(PAYLOAD) // 3
    remote = RemoteFile(_url(server), "train_0.jsonl.gz", size=len(PAYLOAD), sha256=SHA)
    path = download(remote, tmp_path, retries=3, backoff_s=0.01)
    assert path.read_bytes() == PAYLOAD
    assert server.requests[0] is None and server.requests[1] == f"bytes={len(PAYLOAD) // 3}-"
    assert not (tmp_path / "train_0.jsonl.gz.part").exists()
    assert len(gzip.decompress(path.read_bytes()).splitlines()) == 4000
    # a finished file is not fetched again
    n = len(server.requests)
    assert download(remote, tmp_path) == path and len(server.requests) == n


def test_checksum_mismatch_never_reaches_the_final_name(server, tmp_path):
    remote = RemoteFile(_url(server), "train_0.jsonl.gz", size=len(PAYLOAD), sha256="0" * 64)
    with pytest.raises(InputError, match="sha256"):
        download(remote, tmp_path, retries=0)
    assert not (tmp_path / "train_0.jsonl.gz").exists()
    assert (tmp_path / "train_0.jsonl.gz.corrupt").exists()


def test_size_mismatch_is_an_error(server, tmp_path):
    remote = RemoteFile(_url(server), "train_0.jsonl.gz", size=len(PAYLOAD) + 10)
    with pytest.raises((InputError, OfflineError)):
        download(remote, tmp_path, retries=1, backoff_s=0.01)
    assert not (tmp_path / "train_0.jsonl.gz").exists()


def test_offline_error_names_the_url_and_local_copies(tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/ja_wiki/validation_0.jsonl.gz"
    with pytest.raises(OfflineError) as err:
        download(RemoteFile(url, "validation_0.jsonl.gz"), tmp_path, retries=1, backoff_s=0.01)
    msg = str(err.value)
    assert url in msg and "DATA_SOURCE" in msg and str(tmp_path / "validation_0.jsonl.gz") in msg


def test_llmjp_source_downloads_every_file_into_data_dir(server, tmp_path, monkeypatch):
    base = f"http://127.0.0.1:{server.server_address[1]}/ja_wiki"
    monkeypatch.setattr(sources, "LLMJP_BASE", base)
    monkeypatch.setattr(sources, "LLMJP_FILES", ["validation_0.jsonl.gz", "train_0.jsonl.gz", "train_1.jsonl.gz"])
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "raw"))
    files = sources.resolve_source("llm-jp-v3-ja-wiki", "validation*")
    assert [f.path.name for f in files] == ["validation_0.jsonl.gz", "train_0.jsonl.gz", "train_1.jsonl.gz"]
    assert [f.validation for f in files] == [True, False, False]
    assert all(f.path.parent == tmp_path / "raw" / "llm-jp-corpus-v3" / "ja" / "ja_wiki" for f in files)
    assert all(f.path.read_bytes() == PAYLOAD for f in files)


def test_llmjp_urls_are_the_documented_ones():
    urls = [r.url for r in sources.llmjp_remotes()]
    assert len(urls) == 15
    assert urls[0] == (
        "https://gitlab.llm-jp.nii.ac.jp/datasets/llm-jp-corpus-v3/-/raw/main/ja/ja_wiki/validation_0.jsonl.gz?ref_type=heads"
    )
    assert urls[-1].endswith("/train_13.jsonl.gz?ref_type=heads")


def test_sha256sums_file_beside_the_downloads_is_checked(server, tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "LLMJP_BASE", f"http://127.0.0.1:{server.server_address[1]}/ja_wiki")
    monkeypatch.setattr(sources, "LLMJP_FILES", ["train_0.jsonl.gz"])
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "raw"))
    dest = tmp_path / "raw" / "llm-jp-corpus-v3" / "ja" / "ja_wiki"
    dest.mkdir(parents=True)
    (dest / "SHA256SUMS").write_text(f"{'f' * 64}  train_0.jsonl.gz\n")
    with pytest.raises(InputError, match="sha256"):
        sources.resolve_source("llm-jp-v3-ja-wiki", "validation*")
    (dest / "SHA256SUMS").write_text(f"{SHA}  train_0.jsonl.gz\n")
    assert sources.resolve_source("llm-jp-v3-ja-wiki", "validation*")[0].path.read_bytes() == PAYLOAD
