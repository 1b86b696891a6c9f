"""``infomax serve``: the JSON API behind the page, what it refuses to serve, where it listens."""

from __future__ import annotations

import http.client
import io
import json
import socket
import threading

import pytest
from PIL import Image
from test_search import _picture, tiny_run  # noqa: F401 (fixtures)

from infomax.search import Searcher, index_folder, make_server


@pytest.fixture(scope="module")
def served(tiny_run, tmp_path_factory):  # noqa: F811
    """A server on a free port of 127.0.0.1 over an index of 10 pictures; yields (host, port)."""
    folder = tmp_path_factory.mktemp("served") / "pics"
    (folder / "a").mkdir(parents=True)
    for i in range(10):
        _picture(i).save(folder / ("a" if i % 2 else "") / f"{i}.png")
    (folder / "secret.txt").write_text("TOP SECRET 42")
    index = folder.parent / "pics.index"
    index_folder(tiny_run, folder, index, device="cpu")
    server = make_server(Searcher(index, device="cpu"), port=0, k=4)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[:2]
    server.shutdown()
    server.server_close()


def _get(addr, path, method="GET", body=None, host=None):
    conn = http.client.HTTPConnection(*addr, timeout=30)
    headers = {"Host": host} if host else {}
    conn.request(method, path, body=body, headers=headers)
    r = conn.getresponse()
    data = r.read()
    conn.close()
    ctype = r.getheader("Content-Type", "")
    return r.status, (json.loads(data) if ctype.startswith("application/json") else data), ctype


def test_the_api_searches_indexed_and_uploaded_images(served):
    status, info, _ = _get(served, "/api/info")
    assert status == 200 and info["count"] == 10 and info["tap"] == "y" and info["k"] == 4
    status, sample, _ = _get(served, "/api/sample?n=5")
    assert status == 200 and len(sample) == 5 and len({s["id"] for s in sample}) == 5
    for s in sample:  # an indexed image is its own nearest neighbour
        status, res, _ = _get(served, f"/api/search?id={s['id']}&k=3")
        assert status == 200 and res["query"]["path"] == s["path"]
        assert res["neighbors"][0]["path"] == s["path"]
        assert res["neighbors"][0]["similarity"] == pytest.approx(1.0, abs=1e-5)
        assert len(res["neighbors"]) == 3
    status, res, _ = _get(served, "/api/search?path=a/3.png&metric=euclidean&exclude_self=1")
    assert status == 200 and len(res["neighbors"]) == 4
    assert "a/3.png" not in [n["path"] for n in res["neighbors"]]
    assert res["neighbors"][0]["distance"] > 0
    # an uploaded copy of an indexed image finds it first
    body = io.BytesIO()
    _picture(7).save(body, format="JPEG", quality=100)
    status, res, _ = _get(served, "/api/search?k=2", "POST", body.getvalue())
    assert status == 200 and res["query"]["id"] is None and res["neighbors"][0]["path"] == "a/7.png"
    status, err, _ = _get(served, "/api/search", "POST", b"this is not an image")
    assert status == 400 and "cannot read" in err["error"]


def test_only_indexed_images_can_be_read(served):
    status, png, ctype = _get(served, "/thumb/0?size=32")
    assert status == 200 and ctype == "image/png"
    assert Image.open(io.BytesIO(png)).size == (32, 32)
    status, data, ctype = _get(served, "/image/3")
    assert status == 200 and ctype == "image/png" and data.startswith(b"\x89PNG")
    for bad in ("/image/10", "/image/-1", "/image/..%2Fsecret.txt", "/image/../secret.txt",
                "/thumb/1e3", "/secret.txt", "/../pics/secret.txt", "/api/search?path=secret.txt",
                "/api/search?path=../pics/secret.txt", "/api/search?id=99"):  # fmt: skip
        status, body, _ = _get(served, bad)
        assert status in (400, 404), bad
        assert b"TOP SECRET" not in json.dumps(body).encode(), bad
    assert _get(served, "/api/search?id=0&k=0")[0] == 400
    assert _get(served, "/api/search?id=0&metric=manhattan")[0] == 400


def test_it_answers_on_localhost_only(served):
    host, port = served
    assert host == "127.0.0.1"
    # a page on another site that resolves its name to 127.0.0.1 (DNS rebinding) is refused
    status, err, _ = _get(served, "/api/info", host=f"evil.example:{port}")
    assert status == 403 and "localhost" in err["error"]
    assert _get(served, "/api/info", host=f"localhost:{port}")[0] == 200
    # and another address of this machine does not answer at all
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("10.255.255.255", 1))  # no packet is sent; picks the outgoing interface
            own = s.getsockname()[0]
    except OSError:
        own = None
    if own and not own.startswith("127."):
        with pytest.raises(OSError):
            socket.create_connection((own, port), timeout=2).close()


def test_another_host_is_served_only_when_asked_for(tmp_path):
    """``--host 0.0.0.0``: listens on every address and no longer checks the Host header."""
    import torch

    from infomax.search import ImageIndex

    for i in range(3):
        _picture(i).save(tmp_path / f"{i}.png")
    ix = ImageIndex(torch.randn(3, 4), ["0.png", "1.png", "2.png"], [0] * 3, [0] * 3,
                    ["d0", "d1", "d2"], {"root": str(tmp_path), "tap": "y"})  # fmt: skip
    server = make_server(Searcher(ix, device="cpu"), host="0.0.0.0", port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        addr = ("127.0.0.1", server.server_address[1])
        assert server.server_address[0] == "0.0.0.0"
        status, res, _ = _get(addr, "/api/search?id=2&k=1", host="photos.example:80")
        assert status == 200 and res["neighbors"][0]["path"] == "2.png"
    finally:
        server.shutdown()
        server.server_close()
