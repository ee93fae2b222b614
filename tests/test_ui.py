"""protect ui: the access guard, the upload rules and the page's API (Starlette's TestClient, no browser)."""

from __future__ import annotations

import time
from pathlib import Path, PurePosixPath

import numpy as np
import pytest

pytest.importorskip("starlette")
pytest.importorskip("multipart")
pytest.importorskip("httpx")

from starlette.testclient import TestClient  # noqa: E402

from protect import io as pio  # noqa: E402
from protect.pipeline import STRENGTH_PRESETS  # noqa: E402
from protect.ui.server import UIConfig, create_app, page_options, safe_relative, unique_destination  # noqa: E402
from protect.userdirs import resolve_key  # noqa: E402

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
PORT = 48123
BASE = f"http://127.0.0.1:{PORT}"


@pytest.fixture
def ui(tmp_path):
    opened = []
    cfg = UIConfig(token="T0KEN-for-tests", port=PORT, out_dir=tmp_path / "out", key=resolve_key("ui test key"),
                   workers=1, max_upload=4 * 1024 * 1024, opener=lambda p: opened.append(p) or True)
    with TestClient(create_app(cfg, warm=False), base_url=BASE, follow_redirects=False) as client:
        client.cfg, client.opened = cfg, opened
        yield client


def _login(client) -> None:
    r = client.get("/?token=T0KEN-for-tests")
    assert r.status_code == 303 and r.headers["location"] == "/"
    assert "HttpOnly" in r.headers["set-cookie"] and "SameSite=Strict" in r.headers["set-cookie"]


def test_requests_without_token_or_cookie_are_refused(ui):
    for path in ("/", "/api/info", "/static/app.js", "/api/key-backup"):
        assert ui.get(path).status_code == 403
    assert ui.get("/api/info?token=wrong").status_code == 403
    assert ui.post("/api/key-backup", headers={"origin": BASE}).status_code == 403


def test_token_sets_a_session_cookie_that_opens_the_page(ui):
    _login(ui)
    r = ui.get("/")
    assert r.status_code == 200 and "protect" in r.text
    assert "script-src 'self'" in r.headers["content-security-policy"]
    assert ui.get("/static/app.js").status_code == 200
    ui.cookies.clear()
    assert ui.get("/").status_code == 403


def test_host_header_is_checked_against_dns_rebinding(ui):
    r = ui.get("/api/info?token=T0KEN-for-tests", headers={"host": "attacker.example:48123"})
    assert r.status_code == 403
    r = ui.get("/api/info?token=T0KEN-for-tests", headers={"host": "127.0.0.1:9999"})
    assert r.status_code == 403
    r = ui.get("/api/info?token=T0KEN-for-tests", headers={"host": f"localhost:{PORT}"})
    assert r.status_code == 200


def test_state_changing_requests_need_this_origin(ui):
    _login(ui)
    assert ui.post("/api/batches", json={}).status_code == 403  # no Origin
    other_port = ui.post("/api/batches", json={}, headers={"origin": "http://127.0.0.1:8000"})
    assert other_port.status_code == 403  # same site, other origin: still refused
    assert ui.post("/api/batches", json={}, headers={"origin": "http://evil.example"}).status_code == 403
    assert ui.post("/api/batches", json={}, headers={"origin": BASE}).status_code == 200


def test_uploads_are_size_capped(ui):
    _login(ui)
    bid = ui.post("/api/batches", json={}, headers={"origin": BASE}).json()["id"]
    big = b"\x89PNG" + bytes(5 * 1024 * 1024)
    r = ui.post(f"/api/batches/{bid}/files", files={"file": ("big.png", big, "image/png")}, headers={"origin": BASE})
    assert r.status_code == 413


def test_safe_relative_keeps_names_inside():
    assert safe_relative("../../etc/passwd") == PurePosixPath("etc/passwd")
    assert safe_relative("..\\..\\Windows\\x.png") == PurePosixPath("Windows/x.png")
    assert safe_relative("/abs/.hidden/a.png") == PurePosixPath("abs/a.png")
    assert safe_relative('a<b>:c?.png') == PurePosixPath("a_b__c_.png")
    assert safe_relative("../..") is None and safe_relative("") is None


def test_unique_destination_never_leaves_the_folder_or_overwrites(tmp_path):
    out = tmp_path / "out"
    (out / "sub").mkdir(parents=True)
    (out / "a.png").write_bytes(b"old")
    claimed: set = set()
    assert unique_destination(out, PurePosixPath("a.png"), claimed).name == "a (2).png"
    assert unique_destination(out, PurePosixPath("a.png"), claimed).name == "a (3).png"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (out / "link").symlink_to(elsewhere)
    with pytest.raises(ValueError):
        unique_destination(out, PurePosixPath("link/a.png"), set())


def test_presets_come_from_the_pipeline():
    for name, value in STRENGTH_PRESETS.items():
        assert page_options({"preset": name}, "k").settings.strength == value
    assert page_options({"strength": 0.15}, "k").settings.strength == 0.15


def _wait(client, bid, timeout=120):
    t0 = time.time()
    while time.time() - t0 < timeout:
        state = client.get(f"/api/batches/{bid}").json()
        if state["finished"]:
            return state
        time.sleep(0.1)
    raise AssertionError("batch did not finish")


def test_batch_writes_protected_copies_inside_the_output_folder(ui, tmp_path):
    _login(ui)
    h = {"origin": BASE}
    bid = ui.post("/api/batches", json={"preset": "standard", "mark": "ann"}, headers=h).json()["id"]
    src = SAMPLES / "cel_flat_fills.png"
    before = src.read_bytes()
    for name in ("cel_flat_fills.png", "../../escape/cel_flat_fills.png", "folder/sub/cel_flat_fills.png"):
        r = ui.post(f"/api/batches/{bid}/files", files={"file": ("x.png", before, "image/png")},
                    data={"path": name}, headers=h)
        assert r.status_code == 200, r.text
    r = ui.post(f"/api/batches/{bid}/files", files={"file": ("notes.txt", b"hello", "text/plain")}, headers=h)
    assert r.status_code == 415
    assert ui.post(f"/api/batches/{bid}/start", json={}, headers=h).status_code == 200
    state = _wait(ui, bid)
    assert state["error"] is None and [r["status"] for r in state["results"]] == ["protected"] * 3
    out = ui.cfg.out_dir.resolve()
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*")
                     if p.is_file() and not any(x.startswith(".") for x in p.relative_to(out).parts))
    assert written == ["cel_flat_fills.png", "escape/cel_flat_fills.png", "folder/sub/cel_flat_fills.png"]
    assert not (tmp_path / "escape").exists()
    assert src.read_bytes() == before
    orig = pio.read_image(src).frames[0].pixels
    for rel in written:
        prot = pio.read_image(out / rel).frames[0].pixels
        assert prot.shape == orig.shape and not np.array_equal(prot, orig)
    # the mark is read back by the page's detect, with the page's key
    r = ui.post("/api/detect", files={"file": ("p.png", (out / written[0]).read_bytes(), "image/png")}, headers=h)
    assert r.status_code == 200 and r.json()["found"] and r.json()["text"] == "ann"
    r = ui.post("/api/detect", files={"file": ("o.png", before, "image/png")}, headers=h)
    assert r.json()["found"] is False
    # a second batch with the same names does not overwrite the first
    bid2 = ui.post("/api/batches", json={}, headers=h).json()["id"]
    ui.post(f"/api/batches/{bid2}/files", files={"file": ("cel_flat_fills.png", before, "image/png")}, headers=h)
    ui.post(f"/api/batches/{bid2}/start", json={}, headers=h)
    state = _wait(ui, bid2)
    assert state["results"][0]["out"].endswith("cel_flat_fills (2).png")


def test_bad_picture_is_one_failed_row(ui):
    _login(ui)
    h = {"origin": BASE}
    bid = ui.post("/api/batches", json={}, headers=h).json()["id"]
    ui.post(f"/api/batches/{bid}/files", files={"file": ("broken.png", b"\x89PNG not really", "image/png")}, headers=h)
    ui.post(f"/api/batches/{bid}/files", files={"file": ("ok.png", (SAMPLES / "pixel_palette.png").read_bytes(),
                                                         "image/png")}, headers=h)
    ui.post(f"/api/batches/{bid}/start", json={}, headers=h)
    state = _wait(ui, bid)
    by_name = {r["name"]: r for r in state["results"]}
    assert by_name["broken.png"]["status"] == "failed" and by_name["broken.png"]["reason"]
    assert by_name["ok.png"]["status"] == "protected"


def test_preview_returns_crops_and_difference(ui):
    _login(ui)
    data = (SAMPLES / "comic_text.png").read_bytes()
    r = ui.post("/api/preview", files={"file": ("c.png", data, "image/png")},
                data={"options": '{"preset": "strong", "cx": 0.9, "cy": 0.1}'}, headers={"origin": BASE})
    assert r.status_code == 200, r.text
    p = r.json()
    assert all(p[k].startswith("data:image/") for k in ("before", "after", "diff10", "overview"))
    assert p["before"] != p["after"] and p["strength"] == STRENGTH_PRESETS["strong"]
    assert p["crop"]["width"] <= 384 and p["crop"]["x"] + p["crop"]["width"] <= p["size"]["width"]
    r = ui.post("/api/preview", files={"file": ("c.png", data, "image/png")}, data={"options": '{"strength": 7}'},
                headers={"origin": BASE})
    assert r.status_code == 400 and r.json()["error"] == "bad_options"


def test_key_backup_and_open_folder(ui):
    _login(ui)
    r = ui.post("/api/key-backup", headers={"origin": BASE})
    assert r.status_code == 200 and r.text.strip() == "ui test key"
    assert "attachment" in r.headers["content-disposition"] and r.headers["cache-control"] == "no-store"
    r = ui.post("/api/open-folder", headers={"origin": BASE})
    assert r.json()["opened"] and ui.opened == [ui.cfg.out_dir]
    info = ui.get("/api/info").json()
    assert "ui test key" not in str(info) and info["presets"] == STRENGTH_PRESETS
    assert info["defaults"] == {}


def test_output_folder_can_be_changed_to_an_absolute_path(ui, tmp_path):
    _login(ui)
    h = {"origin": BASE}
    assert ui.post("/api/out-dir", json={"path": "relative/dir"}, headers=h).status_code == 400
    r = ui.post("/api/out-dir", json={"path": str(tmp_path / "new out")}, headers=h)
    assert r.status_code == 200 and (tmp_path / "new out").is_dir()
    assert ui.get("/api/info").json()["out_dir"] == str(tmp_path / "new out")


def test_serve_without_the_extra_says_what_to_install(monkeypatch):
    import sys

    from protect.ui import serve

    monkeypatch.setitem(sys.modules, "uvicorn", None)  # import uvicorn -> ImportError
    lines = []
    assert serve(open_browser=False, announce=lines.append) == 2
    assert lines == ['error: the page needs the ui extra: pip install "protect-art[ui]" '
                     "(Starlette, uvicorn and python-multipart)"]


def test_stop_button_stops_the_server(tmp_path):
    stopped = []
    cfg = UIConfig(token="t", port=PORT, out_dir=tmp_path, key=resolve_key("k"), on_stop=lambda: stopped.append(1))
    with TestClient(create_app(cfg, warm=False), base_url=BASE) as client:
        assert client.get("/api/info?token=t").json()["can_stop"] is True
        assert client.post("/api/stop?token=t").status_code == 403  # no Origin: refused
        assert client.post("/api/stop?token=t", headers={"origin": BASE}).json() == {"stopping": True}
    assert stopped == [1]
