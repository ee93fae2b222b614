"""``protect ui``: a local page for artists who never open a terminal.

It needs the ``ui`` extra (``pip install "protect-art[ui]"``: Starlette, uvicorn,
python-multipart).  :func:`serve` binds 127.0.0.1 only, prints an address
with a random access token and opens the browser; the page and its security
rules are in :mod:`protect.ui.server`.
"""

from __future__ import annotations

import secrets
import socket
import sys
import threading
from pathlib import Path

MISSING = ('the page needs the ui extra: pip install "protect-art[ui]" '
           "(Starlette, uvicorn and python-multipart)")


def available() -> str | None:
    """None when the ui extra is installed, else what to install."""
    import importlib.util

    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        return MISSING
    if importlib.util.find_spec("python_multipart") is None and importlib.util.find_spec("multipart") is None:
        return MISSING
    return None


def default_out_dir() -> Path:
    """``~/Pictures/protected`` when there is a Pictures folder, else ``~/protected``."""
    pictures = Path.home() / "Pictures"
    return (pictures if pictures.is_dir() else Path.home()) / "protected"


def bind(port: int) -> socket.socket:
    """A listening socket on 127.0.0.1:``port`` (0 = any free port)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if sys.platform != "win32":
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(64)
    return sock


def serve(*, port: int = 0, out_dir: Path | None = None, key: str | None = None, open_browser: bool = True,
          workers: int = 0, max_upload: int | None = None, announce=print) -> int:
    """Run the page until interrupted; returns an exit code."""
    problem = available()
    if problem:
        announce(f"error: {problem}")
        return 2
    import uvicorn

    from ..config import load_config
    from ..userdirs import key_file, resolve_key
    from .server import DEFAULT_MAX_UPLOAD, UIConfig, create_app

    settings, problems = load_config()
    for line in problems:
        announce(f"protect: {line}")
    if out_dir is None and settings.get("out"):
        out_dir = Path(settings["out"])
    resolved = resolve_key(key)
    assert resolved is not None  # create=True: a key is found or made
    if resolved.created is not None:
        announce(f"protect: created your secret key at {resolved.created} (keep it private; back it up "
                 "from the page)")
    try:
        sock = bind(port)
    except OSError as exc:
        announce(f"error: cannot listen on 127.0.0.1:{port}: {exc.strerror or exc}")
        return 2
    real_port = sock.getsockname()[1]
    cfg = UIConfig(token=secrets.token_urlsafe(24), port=real_port, out_dir=(out_dir or default_out_dir()).expanduser(),
                   key=resolved, key_path=key_file() if resolved.source == "key file" else None,
                   key_created=resolved.created is not None, workers=workers,
                   max_upload=max_upload or DEFAULT_MAX_UPLOAD, defaults=settings)
    url = f"http://127.0.0.1:{real_port}/?token={cfg.token}"
    config = uvicorn.Config(create_app(cfg), log_level="warning", access_log=False, proxy_headers=False,
                            server_header=False, lifespan="on")
    server = uvicorn.Server(config)

    def stop() -> None:
        server.should_exit = True

    cfg.on_stop = stop

    def ready() -> None:
        # uvicorn sets .started once it accepts connections: only then announce the address
        import time

        while not server.started and not server.should_exit:
            time.sleep(0.01)
        if server.started:
            announce(f"protect ui: open {url}")
            announce(f"protect ui: outputs go to {cfg.out_dir}; press Ctrl+C to stop")
            if open_browser:
                import webbrowser

                webbrowser.open(url)

    threading.Thread(target=ready, daemon=True, name="protect-ui-ready").start()
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    return 0
