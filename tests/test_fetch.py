"""``data fetch`` against a local HTTP server on 127.0.0.1."""

import functools
import hashlib
import http.server
import threading

import pytest

from vo2spike.data.fetch import FetchError, fetch_physionet
from vo2spike.data.read import PHYSIONET_SHA256

from .conftest import SHARED, needs_shared


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "mirror"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()


@needs_shared
def test_hashes_in_code_match_the_release_sums():
    sums = (SHARED / "physionet-treadmill-1.0.1" / "SHA256SUMS.txt").read_text().split("\n")
    published = {line.split()[1]: line.split()[0] for line in sums if line.strip()}
    assert PHYSIONET_SHA256 == published


def test_fetch_verifies_and_writes(server, tmp_path):
    root, url = server
    files = {"a.csv": b"x,y\n1,2\n", "b.txt": b"hello"}
    for name, data in files.items():
        (root / name).write_bytes(data)
    expected = {n: hashlib.sha256(d).hexdigest() for n, d in files.items()}
    out = fetch_physionet(tmp_path / "out", base_url=url, expected=expected)
    assert {p.name for p in out.iterdir()} == set(files) | {".vo2spike-output"}


def test_checksum_mismatch_leaves_nothing(server, tmp_path):
    root, url = server
    for name in PHYSIONET_SHA256:
        (root / name).write_text("not the release")
    with pytest.raises(FetchError, match="SHA256"):
        fetch_physionet(tmp_path / "out", base_url=url)
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.partial").exists()


def test_missing_file_leaves_nothing(server, tmp_path):
    _, url = server
    with pytest.raises(FetchError, match="HTTP 404"):
        fetch_physionet(tmp_path / "out", base_url=url)
    assert list(tmp_path.glob("out*")) == []


def test_unreachable_host_says_what_to_do(tmp_path):
    with pytest.raises(FetchError, match="download the release by hand"):
        fetch_physionet(tmp_path / "out", base_url="http://127.0.0.1:9/", timeout=2)
    assert list(tmp_path.glob("out*")) == []
