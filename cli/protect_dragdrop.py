"""Drag-and-drop entry point of the frozen protect app.

Drop image files or folders on the executable: each is protected with the
default settings (or those of a ``protect.toml`` next to the executable),
``_protected`` copies are written beside the originals, a progress bar and a
plain-language summary are shown, and, when the window was opened by the
drop, it waits for Enter before closing.  Started with nothing dropped (a
double click) it opens the protect page (``protect ui``) in the browser;
``--help`` explains how to use it.  Messages are in Japanese when the
system's language is Japanese (or ``PROTECT_LANG=ja``), else in English.

Frozen-app details handled here, before anything imports numba:

* ``multiprocessing.freeze_support()`` so worker processes start the app
  correctly on Windows and macOS;
* numba's on-disk cache of compiled kernels in a per-user writable folder:
  the default (``__pycache__`` next to the kernel sources) is missing or
  read-only in a bundle.  In the frozen app numba (>= 0.57) keys its cache
  on the executable and keeps it in the per-user cache folder
  (``~/.cache/numba``, ``%LOCALAPPDATA%\\numba``, ``~/Library/Caches/numba``);
  run as a script, ``NUMBA_CACHE_DIR`` is pointed at protect's own cache
  folder.  Without a writable cache numba still works, compiling at every
  start;
* the key file lives in the normal per-user config folder, as for the
  command-line tool.

Exit codes are those of ``protect``: 0 all done, 1 some file failed,
2 nothing usable was given.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from pathlib import Path

SETTINGS_FILE = "protect.toml"
DEFAULTS = {"strength": None, "method": None, "visible_position": None, "workers": 0, "format": None,
            "jpeg_quality": 95, "author": None, "copyright": None, "mark": None, "visible": None, "opt_out": True}

USAGE = """\
protect - adds low-visibility protection noise to your pictures.

How to use it: drag pictures, or folders of pictures, onto this program's icon.
Or double-click it: the protect page opens in your web browser.
Protected copies are saved next to them (a folder "X" becomes "X_protected",
a picture "a.png" becomes "a_protected.png"). Your originals are never changed.

Settings: put a file named protect.toml next to this program, for example

    strength = 0.4        # 0.1 = barely any noise ... 1.0 = strongest
    format = "png"        # or "jpeg", "webp"; leave it out to keep each file's format
    jpeg_quality = 95
    author = "Your Name"          # written into the pictures' metadata
    copyright = "(c) 2026 Your Name"
    visible = "(c) Your Name"     # a visible signature in the corner
    mark = "yourname"             # an invisible mark (up to 8 letters), read back with "protect detect"

The pictures also get a "no AI training" notice in their metadata
(opt_out = false turns it off).

Command-line users: this program takes the same paths as "protect PATHS...".
"""

USAGE_JA = """\
protect - 投稿する前に、見えにくい保護ノイズを画像に加えます。

使い方：画像（または画像の入ったフォルダ）を、このプログラムのアイコンにドラッグ＆ドロップします。
またはダブルクリックすると、ブラウザで protect のページが開きます。
保護した画像は元の画像の隣に保存されます（フォルダ「X」は「X_protected」に、
画像「a.png」は「a_protected.png」になります）。元の画像は一切変更されません。

設定：このプログラムと同じ場所に protect.toml というファイルを置きます（例は protect.toml.example）。
    strength = 0.4        # 0.1 = ごく弱い … 1.0 = 最強
    visible = "(c) Your Name"     # 右下に見えるサイン
    mark = "yourname"             # 見えない透かし（半角英数字 8 文字まで）

画像のメタデータには「AI学習禁止」の意思表示も入ります（opt_out = false で無効）。
"""

MESSAGES = {
    "en": {
        "key_created": "Created your secret key: {path}\nKeep it private and back it up (a copy on a USB stick or in a "
                       "password manager): without it your invisible mark cannot be read back.",
        "page_open": "The protect page is open in your browser: {url}\nKeep this window open while you use it; "
                     "close it (or press Ctrl+C) to stop.",
        "page_missing": "This build has no page (the ui extra is missing). Drag pictures onto the icon instead.",
        "not_found": "Not found, skipped: {path}",
        "nothing": "Nothing to do: drop pictures or folders of pictures on the icon.",
        "no_pictures": "No pictures found in what was dropped (PNG, JPEG, WebP, TIFF, BMP and GIF are supported).",
        "bad_setting": "protect.toml has a setting protect cannot use: {error}",
        "protecting": "Protecting {n} picture(s) at strength {strength:g}...",
        "done": "Done. {protected} picture(s) protected, {skipped} already up to date.",
        "saved_in": "Saved in: ",
        "failed": "{n} picture(s) could not be protected:",
        "close": "\nPress Enter to close this window.",
    },
    "ja": {
        "key_created": "あなたの秘密の鍵を作成しました：{path}\n"
                       "他人に見せず、必ずバックアップしてください（USB メモリや"
                       "パスワード管理アプリなど）。鍵がないと見えない透かしを読み取れません。",
        "page_open": "ブラウザで protect のページを開きました：{url}\n"
                     "使っている間はこのウィンドウを開いたままにしてください。"
                     "閉じる（または Ctrl+C）と終了します。",
        "page_missing": "このビルドにはページが含まれていません。画像をアイコンにドロップしてください。",
        "not_found": "見つからないためスキップしました：{path}",
        "nothing": "処理するものがありません。画像または画像の入ったフォルダをアイコンにドロップしてください。",
        "no_pictures": "ドロップされた中に画像がありませんでした（PNG・JPEG・WebP・TIFF・BMP・GIF に対応）。",
        "bad_setting": "protect.toml に使えない設定があります：{error}",
        "protecting": "{n} 枚の画像を強さ {strength:g} で保護しています…",
        "done": "完了しました。{protected} 枚を保護しました（{skipped} 枚は保護済みで最新です）。",
        "saved_in": "保存先：",
        "failed": "{n} 枚の画像を保護できませんでした：",
        "close": "\nEnter キーを押すとこのウィンドウを閉じます。",
    },
}


def language() -> str:
    """"ja" when PROTECT_LANG or the system's language says Japanese, else "en"."""
    import locale

    chosen = os.environ.get("PROTECT_LANG")
    if chosen:
        return "ja" if chosen.lower().startswith("ja") else "en"
    if sys.platform == "win32":
        try:
            import ctypes

            return "ja" if ctypes.windll.kernel32.GetUserDefaultUILanguage() & 0x3FF == 0x11 else "en"
        except (AttributeError, OSError):  # pragma: no cover
            pass
    for var in ("LC_ALL", "LC_MESSAGES", "LANG"):
        if os.environ.get(var):
            return "ja" if os.environ[var].lower().startswith("ja") else "en"
    loc = locale.getlocale()[0] or ""
    return "ja" if loc.lower().startswith("ja") else "en"


def say(key: str, **values) -> str:
    return MESSAGES[language()][key].format(**values)


def app_dir() -> Path:
    """Folder of the executable when frozen, of this script otherwise."""
    if getattr(sys, "frozen", False):
        return Path(sys.executable).resolve().parent
    return Path(__file__).resolve().parent


def prepare_environment() -> None:
    """Point numba's cache at a per-user folder (must run before numba is imported)."""
    if "NUMBA_CACHE_DIR" not in os.environ and not getattr(sys, "frozen", False):
        from protect.userdirs import cache_dir

        folder = cache_dir() / "numba"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            os.environ["NUMBA_CACHE_DIR"] = str(folder)
        except OSError:
            pass  # no writable cache: numba compiles in memory every start (slower, still correct)


def load_settings(folder: Path) -> tuple[dict, str | None]:
    """Defaults, updated by the user's config.toml (shared with the command line and the page),
    then by ``folder/protect.toml``; (settings, problem or None)."""
    import tomllib

    from protect.config import load_config

    settings = dict(DEFAULTS)
    shared, problems = load_config()
    settings.update({k: v for k, v in shared.items() if k in DEFAULTS})
    path = folder / SETTINGS_FILE
    if not path.is_file():
        return settings, "; ".join(problems) or None
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return settings, f"{path}: could not be read ({exc}); using the default settings"
    unknown = sorted(set(data) - set(DEFAULTS) - {"key"})
    for name in DEFAULTS:
        if name in data:
            settings[name] = data[name]
    if "key" in data:
        settings["key"] = str(data["key"])
    return settings, (f"{path}: ignoring unknown setting(s) {', '.join(unknown)}" if unknown else None)


def started_by_drop() -> bool:
    """True when this process owns its console window (opened by a drop or a
    double click), so the window would vanish as soon as we exit."""
    if os.environ.get("PROTECT_NO_PAUSE"):
        return False
    if os.environ.get("PROTECT_PAUSE"):
        return True
    if sys.platform == "win32":
        import ctypes

        pids = (ctypes.c_uint * 4)()
        return ctypes.windll.kernel32.GetConsoleProcessList(pids, 4) <= 2  # us (+ the bootloader)
    return False  # a terminal on Linux/macOS stays open; the macOS app sets PROTECT_PAUSE


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        code = _page()
        if code is not None:
            return code
    pause = started_by_drop()
    try:
        return _run(argv)
    finally:
        if pause:
            try:
                input(say("close"))
            except EOFError:
                pass


def _page() -> int | None:
    """Serve the protect page and open the browser (until the window is closed);
    None when this build has no page."""
    prepare_environment()
    from protect.ui import available, serve

    if available() is not None:
        print(say("page_missing"))
        return None
    settings, problem = load_settings(app_dir())
    if problem:
        print(problem)

    def announce(line: str) -> None:
        if line.startswith("protect: created your secret key at "):
            from protect.userdirs import key_file

            line = say("key_created", path=key_file())
        elif line.startswith("protect ui: open "):
            line = say("page_open", url=line.split("open ", 1)[1])
        elif line.startswith("protect ui: outputs go to"):
            return
        print(line, flush=True)

    return serve(key=settings.get("key"), open_browser=not os.environ.get("PROTECT_NO_BROWSER"),
                 workers=int(settings["workers"] or 0), announce=announce)


def app_options(settings: dict, key: str):
    """The batch options of the app's settings (:func:`load_settings`): the same builder as the
    command line and the page (``protect.options``), so every setting the app reads reaches the work."""
    from protect.options import options_from_mapping

    return options_from_mapping(settings, key=key)


def _run(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE_JA if language() == "ja" else USAGE)
        return 2 if not argv else 0
    prepare_environment()
    from tqdm import tqdm

    from protect.batch import BatchLocked, default_workers, run_batch, warm_jit
    from protect.files import discover
    from protect.userdirs import resolve_key

    settings, problem = load_settings(app_dir())
    if problem:
        print(problem)
    paths = [Path(a) for a in argv]
    missing = [p for p in paths if not p.exists()]
    for p in missing:
        print(say("not_found", path=p))
    paths = [p for p in paths if p.exists()]
    if not paths:
        print(say("nothing"))
        return 2
    try:
        resolved = resolve_key(settings.get("key"))
        if resolved.created is not None:
            print(say("key_created", path=resolved.created))
        options = app_options(settings, resolved.key)
    except (TypeError, ValueError) as exc:
        print(say("bad_setting", error=exc))
        return 2
    jobs = list(discover(paths))
    if not jobs:
        print(say("no_pictures"))
        return 2
    print(say("protecting", n=len(jobs), strength=options.settings.strength))
    warm_jit(mark=options.mark is not None)
    failures = []
    with tqdm(total=len(jobs), unit="picture", file=sys.stdout, dynamic_ncols=True) as bar:
        def on_result(r) -> None:
            if r.status == "failed":
                failures.append(r)

        try:
            report = run_batch(jobs, options, workers=int(settings["workers"]) or default_workers(),
                               on_result=on_result, progress=bar)
        except BatchLocked as exc:  # another run is writing to the same folder
            print(f"\n{exc}")
            return 1
    print()
    print(say("done", protected=report.protected, skipped=report.skipped))
    targets = sorted({str(j.dst.parent) for j in jobs})
    print(say("saved_in") + ("\n  ".join([""] + targets) if len(targets) > 1 else targets[0]))
    if failures:
        print(say("failed", n=len(failures)))
        for r in failures:
            print(f"  {r.src}: {r.reason}")
    return report.exit_code


if __name__ == "__main__":
    multiprocessing.freeze_support()
    sys.exit(main())
