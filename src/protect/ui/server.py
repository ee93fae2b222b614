"""The local page's web application (Starlette), behind an access guard.

Security model (the page can write files and read the artist's key, so only
the person who started ``protect ui`` may drive it):

* the server listens on 127.0.0.1 only (see :func:`protect.ui.serve`);
* every request needs the random token printed in the URL, or the session
  cookie that the first visit with the token sets (HttpOnly,
  SameSite=Strict, named after the port); anything else gets 403;
* the ``Host`` header must be ``127.0.0.1:PORT`` or ``localhost:PORT``,
  which defeats DNS rebinding (a hostile page whose name resolves to
  127.0.0.1 sends its own name as Host);
* requests that change anything (every method but GET/HEAD) must carry an
  ``Origin`` of this very server: a page of another origin, even one on
  another local port (same *site* for cookies), cannot post to it;
* request bodies are capped (``max_upload`` bytes, 413 beyond);
* outputs are written only inside the chosen output folder: uploaded names
  are reduced to safe relative paths and the resolved destination is checked
  to lie inside that folder;
* responses carry a strict Content-Security-Policy (no inline script, no
  third-party anything: the page works offline).
"""

from __future__ import annotations

import base64
import hmac
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING
from urllib.parse import parse_qs

import numpy as np

from .. import __version__
from .. import io as pio
from ..arrays import data_range_of
from ..options import OptionError

if TYPE_CHECKING:  # only for annotations: the page imports the heavy modules when first used
    from ..batch import Options
    from ..userdirs import ResolvedKey

STATIC = Path(__file__).with_name("static")
DEFAULT_MAX_UPLOAD = 200 * 1024 * 1024  # bytes per request (one picture per request)
PREVIEW_CROP = (384, 288)  # width, height of the 1:1 before/after crop, native pixels
OVERVIEW_SIDE = 640  # longest side of the whole-picture overview

CSP = ("default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
       "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


@dataclass
class UIConfig:
    """What one running page serves."""

    token: str
    port: int
    out_dir: Path
    key: ResolvedKey  # never shown, only its source and path
    key_path: Path | None = None  # the key file, when the key comes from one
    key_created: bool = False
    max_upload: int = DEFAULT_MAX_UPLOAD
    workers: int = 0  # 0 = all cores
    opener: Callable[[Path], bool] | None = None  # shows a folder; None = the platform's
    defaults: dict = field(default_factory=dict)  # the page's initial settings (from config.toml)
    on_stop: Callable[[], None] | None = None  # stops the server (the page's Stop button); None = not offered
    session: str = field(default_factory=lambda: os.urandom(24).hex())

    @property
    def cookie_name(self) -> str:
        return f"protect_session_{self.port}"

    @property
    def hosts(self) -> set[str]:
        return {f"127.0.0.1:{self.port}", f"localhost:{self.port}"}

    @property
    def origins(self) -> set[str]:
        return {f"http://{h}" for h in self.hosts}


# ------------------------------------------------------------------ the guard


class _TooLarge(Exception):
    pass


def _plain(status: int, text: str, headers: list | None = None):
    body = text.encode()
    return status, [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode()),
                    (b"cache-control", b"no-store"), *(headers or [])], body


DENIED = ("403 Forbidden: open the address that \"protect ui\" printed (it carries the access key of this page).\n"
          "403 アクセスできません：「protect ui」が表示したアドレス"
          "（このページのアクセスキー付き）を開いてください。\n")


class Guard:
    """Pure ASGI middleware enforcing the rules in the module docstring."""

    def __init__(self, app, cfg: UIConfig):
        self.app = app
        self.cfg = cfg

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        cfg = self.cfg
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        method = scope["method"]
        verdict = None
        if headers.get("host") not in cfg.hosts:
            verdict = _plain(403, "403 Forbidden: wrong Host header (this page answers only to 127.0.0.1).\n")
        elif method not in ("GET", "HEAD") and headers.get("origin") not in cfg.origins:
            verdict = _plain(403, "403 Forbidden: cross-origin request refused.\n")
        else:
            query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
            token_ok = any(hmac.compare_digest(t.encode(), cfg.token.encode()) for t in query.get("token", []))
            cookie = SimpleCookie()
            try:
                cookie.load(headers.get("cookie", ""))
            except Exception:  # noqa: BLE001 - a malformed cookie header is simply not a session
                cookie = SimpleCookie()
            morsel = cookie.get(cfg.cookie_name)
            cookie_ok = morsel is not None and hmac.compare_digest(morsel.value.encode(), cfg.session.encode())
            if not (token_ok or cookie_ok):
                verdict = _plain(403, DENIED)
            elif token_ok and method == "GET" and scope["path"] == "/":
                # trade the token for the session cookie and drop it from the address bar
                set_cookie = (f"{cfg.cookie_name}={cfg.session}; Path=/; HttpOnly; SameSite=Strict").encode()
                verdict = (303, [(b"location", b"/"), (b"set-cookie", set_cookie), (b"content-length", b"0"),
                                 (b"cache-control", b"no-store")], b"")
            else:
                length = headers.get("content-length")
                if length is not None and (not length.isdigit() or int(length) > cfg.max_upload):
                    verdict = _plain(413, f"413 Too large: at most {cfg.max_upload // (1024 * 1024)} MB per picture.\n")
        if verdict is not None:
            status, hdrs, body = verdict
            await send({"type": "http.response.start", "status": status, "headers": hdrs})
            await send({"type": "http.response.body", "body": body})
            return

        seen = 0
        started = False

        async def counted_receive():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > cfg.max_upload:
                    raise _TooLarge
            return message

        async def tracking_send(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = list(message.get("headers", [])) + [
                    (b"content-security-policy", CSP.encode()), (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer"), (b"x-frame-options", b"DENY")]
            await send(message)

        try:
            await self.app(scope, counted_receive, tracking_send)
        except _TooLarge:
            if not started:
                status, hdrs, body = _plain(413, f"413 Too large: at most {cfg.max_upload // (1024 * 1024)} MB.\n")
                await send({"type": "http.response.start", "status": status, "headers": hdrs})
                await send({"type": "http.response.body", "body": body})


# ------------------------------------------------------------- helpers (arrays)


_UNSAFE = re.compile(r'[\x00-\x1f<>:"|?*\\]')


def safe_relative(name: str) -> PurePosixPath | None:
    """A browser-supplied file name or folder-relative path reduced to a safe relative path.

    Both separators count, ``.``/``..``/empty/hidden parts are dropped, characters
    that are invalid on Windows are replaced; None when nothing usable is left.
    """
    parts = []
    for part in re.split(r"[\\/]+", name or ""):
        part = _UNSAFE.sub("_", part).strip().rstrip(".")
        if not part or part in (".", "..") or part.startswith("."):
            continue
        parts.append(part[:200])
    return PurePosixPath(*parts) if parts else None


def unique_destination(out_dir: Path, rel: PurePosixPath, claimed: set[Path]) -> Path:
    """``out_dir/rel``, or ``name (2).ext`` ... when that exists or was already claimed;
    raises ValueError when it would lie outside ``out_dir``."""
    root = out_dir.resolve()
    base = (out_dir / Path(*rel.parts)).resolve()
    if base == root or root not in base.parents:
        raise ValueError("destination outside the output folder")
    cand, n = base, 1
    while cand.exists() or cand in claimed:
        n += 1
        cand = base.with_name(f"{base.stem} ({n}){base.suffix}")
    claimed.add(cand)
    return cand


def _to_display(pixels: np.ndarray, alpha: np.ndarray | None) -> np.ndarray:
    """(H, W, 3) uint8 for the screen: 16-bit reduced, grey expanded, transparency on white."""
    data_range = data_range_of(pixels.dtype)
    px = pixels.astype(np.float32) * (255.0 / data_range)
    if px.shape[2] == 1:
        px = np.repeat(px, 3, axis=2)
    if alpha is not None:
        a = alpha.astype(np.float32)[..., None] / data_range
        px = px * a + 255.0 * (1.0 - a)
    return np.clip(np.rint(px), 0, 255).astype(np.uint8)


def _png_data_url(rgb: np.ndarray) -> str:
    data = pio.encode_image(pio.ImageFile([pio.Frame(np.ascontiguousarray(rgb))], "PNG"), format="PNG")
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _jpeg_data_url(rgb: np.ndarray) -> str:
    data = pio.encode_image(pio.ImageFile([pio.Frame(np.ascontiguousarray(rgb))], "JPEG"), format="JPEG",
                            jpeg_quality=88)
    return "data:image/jpeg;base64," + base64.b64encode(data).decode("ascii")


def _crop_box(h: int, w: int, cx: float, cy: float) -> tuple[int, int, int, int]:
    cw, ch = min(PREVIEW_CROP[0], w), min(PREVIEW_CROP[1], h)
    x0 = int(round(min(max(cx * w - cw / 2, 0), w - cw)))
    y0 = int(round(min(max(cy * h - ch / 2, 0), h - ch)))
    return y0, x0, y0 + ch, x0 + cw


def preview_images(before: np.ndarray, after: np.ndarray, alpha: np.ndarray | None, cx: float, cy: float) -> dict:
    """Data URLs of a 1:1 crop before/after, its difference x10 (grey = unchanged), and an overview."""
    import cv2

    b, a = _to_display(before, alpha), _to_display(after, alpha)
    h, w = b.shape[:2]
    y0, x0, y1, x1 = _crop_box(h, w, cx, cy)
    diff = (after.astype(np.float32) - before.astype(np.float32)) * (255.0 / (255.0 if before.dtype == np.uint8
                                                                              else 65535.0))
    diff = diff[y0:y1, x0:x1]
    if diff.shape[2] == 1:
        diff = np.repeat(diff, 3, axis=2)
    diff10 = np.clip(np.rint(128.0 + 10.0 * diff), 0, 255).astype(np.uint8)
    f = min(1.0, OVERVIEW_SIDE / max(h, w))
    overview = a if f >= 1.0 else cv2.resize(a, (max(1, round(w * f)), max(1, round(h * f))),
                                             interpolation=cv2.INTER_AREA)
    return {
        "before": _png_data_url(b[y0:y1, x0:x1]),
        "after": _png_data_url(a[y0:y1, x0:x1]),
        "diff10": _png_data_url(diff10),
        "overview": _jpeg_data_url(overview),
        "crop": {"x": x0, "y": y0, "width": x1 - x0, "height": y1 - y0},
        "size": {"width": w, "height": h},
    }


# -------------------------------------------------------------------- options


def page_options(raw: dict, key: str) -> Options:
    """``protect.batch.Options`` from the page's JSON options: the shared builder
    (:func:`protect.options.options_from_mapping`); :class:`OptionError` for one it cannot use."""
    from ..options import options_from_mapping

    return options_from_mapping(raw, key=key)


# -------------------------------------------------------------------- batches


@dataclass
class Batch:
    id: str
    options: Options
    staging: Path
    files: list = field(default_factory=list)  # (staged path, relative path)
    results: list = field(default_factory=list)
    total: int = 0
    done: int = 0
    started: bool = False
    finished: bool = False
    summary: str | None = None
    error: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def state(self, out_dir: Path) -> dict:
        with self.lock:
            return {"id": self.id, "total": self.total or len(self.files), "done": self.done,
                    "started": self.started, "finished": self.finished, "results": list(self.results),
                    "summary": self.summary, "error": self.error, "out_dir": str(out_dir)}


class _Progress:
    def __init__(self, batch: Batch):
        self.batch = batch

    def update(self, n: int = 1) -> None:
        with self.batch.lock:
            self.batch.done += n


def _open_folder(path: Path) -> bool:
    try:
        if sys.platform == "win32":
            os.startfile(str(path))  # noqa: S606 - the artist's own output folder
            return True
        opener = "open" if sys.platform == "darwin" else shutil.which("xdg-open")
        if not opener:
            return False
        subprocess.Popen([opener, str(path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return True
    except OSError:
        return False


# ------------------------------------------------------------------------ app


def create_app(cfg: UIConfig, *, warm: bool = True):
    """The Starlette application for ``cfg``, wrapped in :class:`Guard`."""
    from contextlib import asynccontextmanager

    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.responses import FileResponse, JSONResponse, Response
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    batches: dict[str, Batch] = {}
    staging_root = Path(tempfile.mkdtemp(prefix="protect-ui-"))  # private (0700): uploads wait here

    def error(status: int, code: str, detail: str = "") -> JSONResponse:
        return JSONResponse({"error": code, "detail": detail}, status_code=status)

    async def index(request):
        return FileResponse(STATIC / "index.html", headers={"cache-control": "no-store"})

    async def info(request):
        from ..pipeline import DEFAULT_METHOD, DEFAULT_STRENGTH, METHODS, STRENGTH_PRESETS
        from ..visible import POSITIONS

        return JSONResponse({
            "version": __version__,
            "presets": STRENGTH_PRESETS,
            "default_strength": DEFAULT_STRENGTH,
            "methods": list(METHODS),
            "default_method": DEFAULT_METHOD,
            "formats": ["png", "jpeg", "webp", "tiff"],
            "positions": list(POSITIONS),
            "extensions": sorted(pio.EXTENSIONS),
            "out_dir": str(cfg.out_dir),
            "key": {"source": cfg.key.source, "path": str(cfg.key_path) if cfg.key_path else None,
                    "created": cfg.key_created},
            "max_upload": cfg.max_upload,
            "defaults": {k: v for k, v in cfg.defaults.items() if k != "out"},
            "can_stop": cfg.on_stop is not None,
        })

    async def read_upload(request) -> tuple[Path, dict, str] | JSONResponse:
        form = await request.form(max_files=1, max_fields=4, max_part_size=64 * 1024)
        upload = form.get("file")
        if upload is None or not hasattr(upload, "read"):
            return error(400, "no_file")
        rel = safe_relative(str(form.get("path") or upload.filename or ""))
        if rel is None:
            return error(400, "bad_name")
        try:
            options = json.loads(str(form.get("options") or "{}"))
        except ValueError:
            return error(400, "bad_options")
        folder = Path(tempfile.mkdtemp(dir=staging_root))
        staged = folder / ("upload" + Path(rel.name).suffix.lower())
        with open(staged, "wb") as f:
            while chunk := await upload.read(1 << 20):
                f.write(chunk)
        await upload.close()
        return staged, options, str(rel)

    def _preview(staged: Path, raw: dict) -> dict:
        from ..pipeline import diff_stats, protect_image
        from ..visible import apply_visible
        from ..watermark import embed_mark

        options = page_options(raw, cfg.key.key)
        img = pio.read_image(staged)
        fr = img.frames[0]
        notes: list[str] = []
        base = fr.pixels if options.visible is None else apply_visible(fr.pixels, options.visible, alpha=fr.alpha,
                                                                       notes=notes)
        out, rep = protect_image(base, options.settings, alpha=fr.alpha)
        if options.mark is not None:
            out = embed_mark(out, options.mark, options.settings.key, alpha=fr.alpha)
        cx = float(raw.get("cx", 0.5))
        cy = float(raw.get("cy", 0.5))
        result = preview_images(fr.pixels, out, fr.alpha, min(max(cx, 0.0), 1.0), min(max(cy, 0.0), 1.0))
        result["psnr"] = round(float(diff_stats(fr.pixels, out)[0]), 2)
        result["strength"] = options.settings.strength
        result["notes"] = notes
        return result

    async def preview(request):
        got = await read_upload(request)
        if isinstance(got, JSONResponse):
            return got
        staged, raw, _ = got
        try:
            return JSONResponse(await run_in_threadpool(_preview, staged, raw))
        except OptionError as exc:
            return error(400, "bad_options", str(exc))
        except pio.InputError as exc:
            return error(422, "bad_image", str(exc))
        finally:
            shutil.rmtree(staged.parent, ignore_errors=True)

    async def detect(request):
        got = await read_upload(request)
        if isinstance(got, JSONResponse):
            return got
        staged, _, rel = got

        def run() -> dict:
            from ..watermark import detect_mark, payload_text

            fr = pio.read_image(staged).frames[0]
            det = detect_mark(fr.pixels, cfg.key.key, alpha=fr.alpha)
            payload = det.payload if det.found else None
            return {"name": rel, "found": det.found, "text": payload_text(payload) if payload is not None else None,
                    "hex": payload.hex() if payload is not None else None, "z": round(det.z, 1)}

        try:
            return JSONResponse(await run_in_threadpool(run))
        except pio.InputError as exc:
            return error(422, "bad_image", str(exc))
        finally:
            shutil.rmtree(staged.parent, ignore_errors=True)

    async def new_batch(request):
        try:
            raw = await request.json()
            options = page_options(raw if isinstance(raw, dict) else {}, cfg.key.key)
        except OptionError as exc:
            return error(400, "bad_options", str(exc))
        except ValueError:
            return error(400, "bad_options")
        bid = uuid.uuid4().hex
        batches[bid] = Batch(bid, options, Path(tempfile.mkdtemp(dir=staging_root)))
        return JSONResponse({"id": bid})

    async def add_file(request):
        batch = batches.get(request.path_params["bid"])
        if batch is None:
            return error(404, "no_batch")
        if batch.started:
            return error(409, "already_started")
        got = await read_upload(request)
        if isinstance(got, JSONResponse):
            return got
        staged, _, rel = got
        if Path(rel).suffix.lower() not in pio.EXTENSIONS:
            shutil.rmtree(staged.parent, ignore_errors=True)
            return error(415, "not_a_picture", rel)
        with batch.lock:
            batch.files.append((staged, rel))
        return JSONResponse({"name": rel, "count": len(batch.files)})

    def _run_batch(batch: Batch) -> None:
        from ..batch import Status, default_workers, run_batch, warm_jit
        from ..files import Job

        try:
            claimed: set[Path] = set()
            jobs = []
            for staged, rel in batch.files:
                relp = PurePosixPath(rel)
                if batch.options.format:
                    relp = relp.with_suffix(pio.extension_for(batch.options.format, relp.suffix))
                dst = unique_destination(cfg.out_dir, relp, claimed)
                jobs.append(Job(staged, dst, Path(rel)))
            names = {str(j.src): (str(j.rel), j.dst) for j in jobs}
            with batch.lock:
                batch.total = len(jobs)
            warm_jit(mark=batch.options.mark is not None)

            def on_result(r) -> None:
                rel, dst = names.get(r.src, (r.src, None))
                row = {"name": rel, "status": r.status, "reason": r.reason, "note": r.note,
                       "out": str(dst) if r.status == Status.PROTECTED else None, "psnr": r.psnr}
                with batch.lock:
                    batch.results.append(row)

            report = run_batch(jobs, batch.options, workers=cfg.workers or default_workers(), overwrite=True,
                               on_result=on_result, progress=_Progress(batch))
            with batch.lock:
                batch.summary = report.summary()
        except Exception as exc:  # noqa: BLE001 - shown on the page, the server keeps running
            with batch.lock:
                batch.error = f"{type(exc).__name__}: {exc}"
        finally:
            shutil.rmtree(batch.staging, ignore_errors=True)
            for staged, _ in batch.files:
                shutil.rmtree(staged.parent, ignore_errors=True)
            with batch.lock:
                batch.finished = True

    async def start_batch(request):
        batch = batches.get(request.path_params["bid"])
        if batch is None:
            return error(404, "no_batch")
        with batch.lock:
            if batch.started:
                return error(409, "already_started")
            if not batch.files:
                return error(400, "no_files")
            batch.started = True
        threading.Thread(target=_run_batch, args=(batch,), name=f"protect-batch-{batch.id[:8]}", daemon=True).start()
        return JSONResponse(batch.state(cfg.out_dir))

    async def batch_state(request):
        batch = batches.get(request.path_params["bid"])
        if batch is None:
            return error(404, "no_batch")
        return JSONResponse(batch.state(cfg.out_dir))

    async def open_folder(request):
        cfg.out_dir.mkdir(parents=True, exist_ok=True)
        opener = cfg.opener or _open_folder
        return JSONResponse({"opened": bool(opener(cfg.out_dir)), "path": str(cfg.out_dir)})

    async def set_out_dir(request):
        try:
            raw = await request.json()
            path = Path(str(raw["path"])).expanduser()
        except (ValueError, KeyError, TypeError):
            return error(400, "bad_folder")
        if not path.is_absolute():
            return error(400, "bad_folder", "give a full path")
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            return error(400, "bad_folder", exc.strerror or str(exc))
        cfg.out_dir = path
        return JSONResponse({"out_dir": str(path)})

    async def stop(request):
        if cfg.on_stop is None:
            return error(404, "cannot_stop")
        cfg.on_stop()
        return JSONResponse({"stopping": True})

    async def key_backup(request):
        return Response(cfg.key.key + "\n", media_type="text/plain; charset=utf-8", headers={
            "content-disposition": 'attachment; filename="protect-key.txt"', "cache-control": "no-store"})

    @asynccontextmanager
    async def lifespan(app):
        if warm:  # compile (or load) the kernels while the artist looks at the page
            from ..batch import warm_jit

            threading.Thread(target=warm_jit, daemon=True, name="protect-warm").start()
        try:
            yield
        finally:
            shutil.rmtree(staging_root, ignore_errors=True)

    routes = [
        Route("/", index),
        Route("/api/info", info),
        Route("/api/preview", preview, methods=["POST"]),
        Route("/api/detect", detect, methods=["POST"]),
        Route("/api/batches", new_batch, methods=["POST"]),
        Route("/api/batches/{bid}/files", add_file, methods=["POST"]),
        Route("/api/batches/{bid}/start", start_batch, methods=["POST"]),
        Route("/api/batches/{bid}", batch_state),
        Route("/api/open-folder", open_folder, methods=["POST"]),
        Route("/api/out-dir", set_out_dir, methods=["POST"]),
        Route("/api/key-backup", key_backup, methods=["POST"]),
        Route("/api/stop", stop, methods=["POST"]),
        Mount("/static", app=StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.batches = batches
    return Guard(app, cfg)


__all__ = ["UIConfig", "Guard", "create_app", "safe_relative", "unique_destination", "page_options",
           "preview_images", "DEFAULT_MAX_UPLOAD"]
