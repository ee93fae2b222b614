"""Command line: ``protect PATHS... [options]``, ``protect verify``, ``protect declutter``.

Exit codes
----------
0  every file was protected or already up to date / every pair verified
   and met the thresholds
1  at least one file failed (each failure is one line on stderr), or a
   verify threshold was missed
2  usage error (bad option, missing path)
"""

from __future__ import annotations

import difflib
import json
import os
import sys
from enum import Enum
from pathlib import Path
from typing import NoReturn

import numpy as np
import typer
from typer.core import TyperGroup

from . import __version__
from . import io as pio
from .arrays import data_range_of
from .batch import BatchLocked, Status, default_workers, run_batch, warm_jit
from .files import SUFFIX, describe_error, discover, walk_images
from .options import OptionError, build_options, with_key
from .pipeline import DEFAULT_METHOD, DEFAULT_STRENGTH, METHODS
from .userdirs import KEY_ENV, KeyProblem, resolve_key
from .visible import POSITIONS

# Fixed choices, shown in --help and checked by the parser (values from the modules that define them).
# (Built from those names at import time, which mypy cannot follow: hence the ignores.)
Method = Enum("Method", {m: m for m in METHODS}, type=str)  # type: ignore[misc]
Format = Enum("Format", {f: f for f in ("png", "jpeg", "jpg", "webp", "tiff", "bmp", "gif")}, type=str)  # type: ignore[misc]
Position = Enum("Position", {p: p for p in POSITIONS}, type=str)  # type: ignore[misc]

#: File types people drop that protect cannot read: skipped with a note instead of silently.
UNSUPPORTED_IMAGES = (".avif", ".heic", ".heif", ".jxl", ".psd", ".clip", ".kra")


def _usage_error(message: str, ctx):
    """click's UsageError, from the click typer uses (its own vendored copy in newer releases)."""
    cls = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")
    return cls(message, ctx=ctx)


class _DefaultToRun(TyperGroup):
    """``protect PATHS...`` means ``protect run PATHS...``; a mistyped command gets "did you mean"."""

    def parse_args(self, ctx, args: list[str]) -> list[str]:  # ctx: typer's (vendored) click Context
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h", "--version", "-V"):
            first = args[0]
            if not first.startswith("-") and not os.path.exists(first):
                close = difflib.get_close_matches(first, list(self.commands), n=1, cutoff=0.6)
                if close:
                    raise _usage_error(f"no such command or file: {first!r}. Did you mean {close[0]!r}?", ctx)
            args = ["run", *args]
        return super().parse_args(ctx, args)


# The panels of "protect run --help".
_PANEL_KEY = "Strength and key"
_PANEL_OUTPUT = "Output"
_PANEL_RUN = "Running"
_PANEL_MARKS = "Marks and metadata"
_PANEL_VISIBLE = "Visible signature"

app = typer.Typer(
    cls=_DefaultToRun,
    no_args_is_help=True,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    help="Protect artwork before posting it: low-visibility adversarial noise, measured.\n\n"
    "protect PATHS... is short for protect run PATHS...\n\n"
    "Examples:\n\n"
    "  protect ./illustrations          (protected copies in ./illustrations_protected/)\n\n"
    "  protect ui                       (the page in your browser)\n\n"
    "  protect detect posted.jpg        (is my invisible mark in it?)",
)

RUN_EXAMPLES = """Examples:

  protect ./illustrations

  protect art.png --strength 0.2 --out ~/to_post

  protect ./illustrations --mark ann_art --visible "© Ann 2026" --author Ann

  protect ./illustrations --dry-run

Settings you always use can go in config.toml next to your key (see protect.config)."""


def _version(value: bool) -> None:
    if value:
        typer.echo(f"protect {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    version: bool = typer.Option(False, "--version", "-V", callback=_version, is_eager=True, help="Show the version."),
) -> None:
    from .config import cli_defaults, load_config

    settings, problems = load_config()
    for line in problems:
        _err(f"protect: {line}")
    if settings:
        ctx.default_map = cli_defaults(settings)


def _write_json(path: Path, data) -> None:
    """``--json FILE`` (written atomically) or ``--json -`` (standard output)."""
    text = json.dumps(data, indent=2) + "\n"
    if str(path) == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        pio.atomic_write_bytes(path, text.encode())


def _err(msg: str) -> None:
    from tqdm import tqdm

    tqdm.write(msg, file=sys.stderr)


def _fail(msg: str) -> NoReturn:
    """Print ``msg`` (one line, to stderr) and exit 1."""
    _err(msg)
    raise typer.Exit(1)


@app.command("run", epilog=RUN_EXAMPLES)
# The run command's options, one per line so that they read as a table (long lines by choice).
def run(
    paths: list[Path] = typer.Argument(..., help="Image files and folders (searched recursively).", exists=True),
    strength: float = typer.Option(DEFAULT_STRENGTH, "--strength", "-s", min=0.0, max=1.0, help=f"0 = unchanged ... 1 = strongest; {DEFAULT_STRENGTH:g} keeps the noise hard to see.", rich_help_panel=_PANEL_KEY),  # noqa: E501 - one option per line
    method: Method = typer.Option(DEFAULT_METHOD, "--method", help="adversarial = noise designed against an image autoencoder (default); texture = the older hand-shaped noise hidden in texture (least visible, weakest effect).", rich_help_panel=_PANEL_KEY),  # noqa: E501 - one option per line
    out: Path | None = typer.Option(None, "--out", "-o", file_okay=False, help="Write outputs here, keeping relative paths and names.", rich_help_panel=_PANEL_OUTPUT),  # noqa: E501 - one option per line
    key: str | None = typer.Option(None, "--key", help="Your secret key (visible to other users in ps: prefer --key-file or " f"{KEY_ENV}; default: {KEY_ENV}, else the key kept in your config folder).", rich_help_panel=_PANEL_KEY),  # noqa: E501 - one option per line
    key_file: Path | None = typer.Option(None, "--key-file", dir_okay=False, help="Read your secret key from this file.", rich_help_panel=_PANEL_KEY),  # noqa: E501 - one option per line
    mask: Path | None = typer.Option(None, "--mask", exists=True, help="Greyscale mask (white = full strength, black = none), or a folder of masks matched by relative path.", rich_help_panel=_PANEL_KEY),  # noqa: E501 - one option per line
    workers: int = typer.Option(0, "--workers", "-j", min=0, help="Parallel processes (0 = all cores).", rich_help_panel=_PANEL_RUN),  # noqa: E501 - one option per line
    fmt: Format | None = typer.Option(None, "--format", "-f", help="Output format (default: same as input).", rich_help_panel=_PANEL_OUTPUT),  # noqa: E501 - one option per line
    jpeg_quality: int = typer.Option(95, "--jpeg-quality", min=1, max=100, help="JPEG quality (4:4:4 chroma), also used for lossy WebP.", rich_help_panel=_PANEL_OUTPUT),  # noqa: E501 - one option per line
    max_pixels: int = typer.Option(pio.DEFAULT_MAX_PIXELS, "--max-pixels", min=1, help="Refuse images with more pixels than this.", rich_help_panel=_PANEL_RUN),  # noqa: E501 - one option per line
    overwrite: bool = typer.Option(False, "--overwrite", help="Redo outputs even when they are up to date, and replace files at output paths that protect cannot prove it wrote (never folders).", rich_help_panel=_PANEL_OUTPUT),  # noqa: E501 - one option per line
    dry_run: bool = typer.Option(False, "--dry-run", help="Only list what would be done.", rich_help_panel=_PANEL_OUTPUT),  # noqa: E501 - one option per line
    json_path: Path | None = typer.Option(None, "--json", dir_okay=False, help="Write per-file results (status, sizes, PSNR, time) here ('-': to standard output).", rich_help_panel=_PANEL_OUTPUT),  # noqa: E501 - one option per line
    verify: bool = typer.Option(False, "--verify", help="Also measure SSIMULACRA2 of each output (slower).", rich_help_panel=_PANEL_RUN),  # noqa: E501 - one option per line
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar or summary; errors only.", rich_help_panel=_PANEL_RUN),  # noqa: E501 - one option per line
    verbose: bool = typer.Option(False, "--verbose", "-v", help="One line per file: where it went, PSNR, time.", rich_help_panel=_PANEL_RUN),  # noqa: E501 - one option per line
    debug: bool = typer.Option(False, "--debug", envvar="PROTECT_DEBUG", help="For a file that fails, also print the traceback behind its one-line error (to standard error; the key is never shown). Also PROTECT_DEBUG=1.", rich_help_panel=_PANEL_RUN),  # noqa: E501 - one option per line
    mark: str | None = typer.Option(None, "--mark", help="Add an invisible watermark carrying this text (1-8 ASCII characters, e.g. your handle); read it back with protect detect.", rich_help_panel=_PANEL_MARKS),  # noqa: E501 - one option per line
    mark_hex: str | None = typer.Option(None, "--mark-hex", help="The same with a 64-bit payload in hex.", rich_help_panel=_PANEL_MARKS),  # noqa: E501 - one option per line
    no_metadata: bool = typer.Option(False, "--no-metadata", help="Do not add the AI-training opt-out (XMP plus:DataMining) to outputs.", rich_help_panel=_PANEL_MARKS),  # noqa: E501 - one option per line
    author: str | None = typer.Option(None, "--author", help="Creator name for XMP dc:creator and EXIF Artist.", rich_help_panel=_PANEL_MARKS),  # noqa: E501 - one option per line
    copyright_: str | None = typer.Option(None, "--copyright", help="Copyright notice for XMP dc:rights and EXIF Copyright.", rich_help_panel=_PANEL_MARKS),  # noqa: E501 - one option per line
    opt_out: str = typer.Option("aiml", "--opt-out", help="aiml = prohibit all AI/ML training (IPTC DMI-PROHIBITED-AIMLTRAINING); genai = prohibit generative AI training only (DMI-PROHIBITED-GENAIMLTRAINING).", rich_help_panel=_PANEL_MARKS),  # noqa: E501 - one option per line
    strip_location: bool = typer.Option(False, "--strip-location", help="Remove the location (EXIF GPS, XMP exif:GPS*) from outputs.", rich_help_panel=_PANEL_MARKS),  # noqa: E501 - one option per line
    visible_text: str | None = typer.Option(None, "--visible", help="Draw this text as a visible signature.", rich_help_panel=_PANEL_VISIBLE),  # noqa: E501 - one option per line
    visible_image: Path | None = typer.Option(None, "--visible-image", exists=True, dir_okay=False, help="Draw this logo (its transparency is used) instead.", rich_help_panel=_PANEL_VISIBLE),  # noqa: E501 - one option per line
    visible_position: Position = typer.Option("bottom-right", "--visible-position", help="Where the signature goes.", rich_help_panel=_PANEL_VISIBLE),  # noqa: E501 - one option per line
    visible_opacity: float = typer.Option(0.5, "--visible-opacity", min=0.01, max=1.0, rich_help_panel=_PANEL_VISIBLE),
    visible_scale: float = typer.Option(0.05, "--visible-scale", min=0.005, max=1.0, help="Text height / logo width as a fraction of the shorter side.", rich_help_panel=_PANEL_VISIBLE),  # noqa: E501 - one option per line
    c2pa: tuple[Path, Path] | None = typer.Option(None, "--c2pa", metavar="CERT KEY", help="Sign a C2PA manifest (AI training: not allowed) with this certificate chain and private key (PEM; needs the c2pa extra of protect-art).", rich_help_panel=_PANEL_MARKS),  # noqa: E501 - one option per line
    c2pa_alg: str = typer.Option("es256", "--c2pa-alg", help="Signing algorithm of the C2PA key.", rich_help_panel=_PANEL_MARKS),  # noqa: E501 - one option per line
    scheduler: str | None = typer.Option(None, "--scheduler", metavar="tcp://HOST:PORT", help="Run on this Dask cluster (needs the dask extra of protect-art; shared filesystem; every worker holds the same key in its PROTECT_KEY or PROTECT_KEY_FILE). See docs/scale.md.", rich_help_panel=_PANEL_RUN),  # noqa: E501 - one option per line
) -> None:
    """Protect images and folders of images; originals are never modified."""
    method_name, position_name = Method(method).value, Position(visible_position).value
    out_format = pio.normalise_format(Format(fmt).value) if fmt else None
    _check_out_is_not_an_input(paths, out)
    if json_path is not None and str(json_path) != "-":
        _check_writable(json_path, "--json")
    if mark is not None and mark_hex is not None:
        raise typer.BadParameter("give --mark or --mark-hex, not both", param_hint="--mark")
    if visible_text is not None and visible_image is not None:
        raise typer.BadParameter("give --visible or --visible-image, not both", param_hint="--visible")
    try:  # every setting checked before the key is looked up (or made)
        unkeyed = build_options(
            key="", strength=strength, method=method_name, format=out_format, jpeg_quality=jpeg_quality,
            max_pixels=max_pixels, verify=verify, mark=mark, mark_hex=mark_hex, opt_out=not no_metadata,
            opt_out_kind=opt_out, author=author, copyright=copyright_, strip_location=strip_location,
            visible=visible_text, visible_logo=_logo(visible_image), visible_position=position_name,
            visible_opacity=visible_opacity, visible_scale=visible_scale, c2pa=_c2pa_credentials(c2pa),
            c2pa_alg=c2pa_alg,
        )
    except OptionError as exc:
        raise typer.BadParameter(str(exc), param_hint=_FLAG_OF.get(exc.option, "--" + exc.option)) from None
    if scheduler is None:
        resolved = _key(key, key_file)
    else:
        resolved = _cluster_key(key if key_file is None else _key(key, key_file).key)
    if resolved.created is not None and not quiet:
        _err(
            f"protect: created your secret key at {resolved.created} (keep it private; back it up with "
            "protect key export)"
        )
    options = with_key(unkeyed, resolved.key)
    jobs = list(discover(paths, out=out, fmt=out_format, mask=mask))
    n_workers = workers or default_workers()
    if not dry_run and jobs and scheduler is None:
        warm_jit(mark=options.mark is not None)  # compile once here, before the bar starts

    from tqdm import tqdm

    # a bar only for a person watching: redirected to a log it would be one line per update
    bar = tqdm(
        total=len(jobs),
        unit="img",
        disable=quiet or not jobs or not sys.stderr.isatty(),
        file=sys.stderr,
        dynamic_ncols=True,
    )
    if not quiet:
        _note_unsupported(paths)

    def on_result(r) -> None:
        if r.status == Status.FAILED:
            _err(f"error: {r.src}: {r.reason}")
            if debug and r.trace:
                _err(r.trace.rstrip())  # the key was masked where the trace was made
        elif r.note and not quiet:
            _err(f"note: {r.src}: {r.note}")
        elif r.status == Status.WOULD_PROTECT and not quiet:
            _err(f"would protect {r.src} -> {r.dst}")
        if verbose and not quiet and r.status in (Status.PROTECTED, Status.SKIPPED):
            detail = (
                f" (PSNR {r.psnr:.1f} dB, {r.seconds:.2f} s)"
                if r.status == Status.PROTECTED and r.psnr is not None
                else " (up to date)"
                if r.status == Status.SKIPPED
                else ""
            )
            _err(f"{r.status}: {r.src} -> {r.dst}{detail}")

    try:
        if scheduler is None:
            report = run_batch(
                jobs,
                options,
                workers=n_workers,
                overwrite=overwrite,
                dry_run=dry_run,
                on_result=on_result,
                progress=bar,
            )
        else:
            from .distributed import ClusterError, run_jobs

            try:
                report = run_jobs(
                    jobs,
                    options,
                    client=scheduler,
                    overwrite=overwrite,
                    dry_run=dry_run,
                    on_result=on_result,
                    progress=bar,
                )
            except ClusterError as exc:
                bar.close()
                _err(f"error: {exc}")
                raise typer.Exit(2) from None
    except BatchLocked as exc:
        bar.close()
        _fail(f"error: {exc}")
    finally:
        bar.close()
    code = report.exit_code
    if report.interrupted:  # stopping: more Ctrl-C only cut the last lines short
        import signal

        signal.signal(signal.SIGINT, signal.SIG_IGN)
    if json_path is not None:
        try:
            _write_json(json_path, report.to_json())
        except OSError as exc:
            _err(f"error: cannot write --json {json_path}: {exc.strerror or exc}")
            code = code or 1
    if report.interrupted:
        _err(f"protect: {report.stopped_line()}")
        raise typer.Exit(code)
    if not quiet:
        if not jobs:
            _err("protect: no images found")
        _err(f"protect: {report.summary()}")
    raise typer.Exit(code)


def _key(option: str | None, key_file: Path | None, *, create: bool = True):
    """The artist key, or a clean error (exit 2); warns when it came on the command line."""
    if option is not None:
        _err(f"warning: --key is visible to every user of this computer (ps); use --key-file or {KEY_ENV}")
        if key_file is not None:
            raise typer.BadParameter("give --key or --key-file, not both", param_hint="--key")
    try:
        return resolve_key(option, create=create, key_path=key_file)
    except KeyProblem as exc:
        _err(f"error: {exc}")
        raise typer.Exit(2) from None


def _check_writable(path: Path, hint: str) -> None:
    """Refuse an output file that cannot be written, before any work is done."""
    import os

    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise typer.BadParameter(f"{path} is a folder", param_hint=hint)
    if not parent.is_dir():
        raise typer.BadParameter(f"the folder {parent} does not exist", param_hint=hint)
    if not os.access(parent, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise typer.BadParameter(f"{path} cannot be written (permission denied)", param_hint=hint)


def _cluster_key(option: str | None):
    """With --scheduler the client needs the workers' key too (to check them), and never makes one up."""
    from .distributed import ClusterError, key_from_environment

    try:
        found = option or key_from_environment()
    except ClusterError as exc:
        raise typer.BadParameter(str(exc), param_hint="--scheduler") from None
    if not found:
        raise typer.BadParameter(
            f"give the workers' key here too (--key, {KEY_ENV} or PROTECT_KEY_FILE), "
            "so protect can check they all hold it",
            param_hint="--scheduler",
        )
    from .userdirs import ResolvedKey

    return ResolvedKey(found, "option")


def _check_out_is_not_an_input(paths: list[Path], out: Path | None) -> None:
    """--out equal to an input folder (or to the folder of an input file) would put outputs on the originals."""
    if out is None:
        return
    target = out.resolve()
    for p in paths:
        folder = p.resolve() if p.is_dir() else p.resolve().parent
        if folder == target:
            raise typer.BadParameter(
                f"{out} is {'the input folder' if p.is_dir() else 'the folder of ' + str(p)}; "
                "outputs keep their names, so they would replace the originals. "
                "Choose another folder",
                param_hint="--out",
            )


def _note_unsupported(paths: list[Path]) -> None:
    """One note for the picture files protect cannot read (HEIC, AVIF, ...), instead of skipping them silently."""
    found: dict[str, int] = {}
    for p in paths:
        if p.is_file():
            candidates = [p]
        else:
            candidates = []
            for dirpath, dirnames, filenames in os.walk(p):
                dirnames[:] = [d for d in dirnames if not d.startswith(".") and not d.endswith(SUFFIX)]
                candidates += [Path(dirpath, f) for f in filenames if not f.startswith(".")]
        for c in candidates:
            if c.suffix.lower() in UNSUPPORTED_IMAGES:
                found[c.suffix.lower()] = found.get(c.suffix.lower(), 0) + 1
    if found:
        kinds = ", ".join(f"{n} {ext}" for ext, n in sorted(found.items()))
        _err(
            f"note: skipped {kinds} file(s): protect reads PNG, JPEG, WebP, TIFF, BMP and GIF; "
            "export or convert them to one of those first"
        )


#: The flag of each setting, for a setting's error (options.OptionError names the setting).
_FLAG_OF = {"opt_out_kind": "--opt-out", "mark": "--mark/--mark-hex", "visible": "--visible",
            "strength": "--strength", "method": "--method", "format": "--format"}


def _logo(image: Path | None) -> np.ndarray | None:
    """The --visible-image file as an RGB or RGBA uint8/uint16 array (its transparency kept)."""
    if image is None:
        return None
    try:
        fr = pio.read_image(image).frames[0]
    except pio.InputError as exc:
        raise typer.BadParameter(f"{image}: {exc}", param_hint="--visible-image") from None
    px = fr.pixels if fr.pixels.shape[2] == 3 else np.repeat(fr.pixels, 3, axis=2)
    return px if fr.alpha is None else np.dstack([px, fr.alpha])


def _c2pa_credentials(paths) -> tuple[bytes, bytes] | None:
    if not paths:
        return None
    try:
        import c2pa  # noqa: F401
    except ImportError:
        raise typer.BadParameter(
            "C2PA signing needs the c2pa extra: pip install 'protect-art[c2pa]'", param_hint="--c2pa"
        ) from None
    try:
        return paths[0].read_bytes(), paths[1].read_bytes()
    except OSError as exc:
        raise typer.BadParameter(f"{exc.filename}: {exc.strerror}", param_hint="--c2pa") from None


@app.command("detect")
def detect(
    files: list[Path] = typer.Argument(..., exists=True, help="Images (or folders of images) to check."),
    key: str | None = typer.Option(
        None, "--key", help=f"The key the mark was made with (default: {KEY_ENV}, else your key file)."
    ),
    key_file: Path | None = typer.Option(None, "--key-file", dir_okay=False, help="Read the key from this file."),
    json_path: Path | None = typer.Option(
        None, "--json", dir_okay=False, help="Write the results here ('-': to standard output)."
    ),
    require: bool = typer.Option(False, "--require", help="Exit 1 when a file carries no readable mark (for scripts)."),
) -> None:
    """Look for protect's invisible watermark and print its payload.

    Exit codes: 0 every file was read (found or not; with --require: every file has a mark),
    1 a file could not be read (or, with --require, has no mark), 2 usage error.
    """
    from .watermark import detect_mark, describe_detection

    resolved = _key(key, key_file, create=False)
    if resolved is None:
        _err("error: no key given and no key file exists; pass --key")
        raise typer.Exit(2)
    paths, seen = [], set()
    for f in files:
        for p in walk_images(f) if f.is_dir() else [f]:
            if p.resolve() not in seen:  # a file named twice (or inside a folder also named) is read once
                seen.add(p.resolve())
                paths.append(p)
    rows, failed, missing = [], 0, 0
    to_stdout = json_path is not None and str(json_path) == "-"  # then the JSON alone goes to stdout

    def say(line: str) -> None:
        typer.echo(line, err=to_stdout)

    for path in paths:
        try:
            img = pio.read_image(path)
            fr = img.frames[0]
            det = detect_mark(fr.pixels, resolved.key, alpha=fr.alpha)
        except Exception as exc:  # noqa: BLE001 - one bad file must not stop the others
            failed += 1
            _err(f"error: {path}: {describe_error(exc)}")
            continue
        rows.append({"file": str(path), **det.to_json()})
        missing += not det.found
        say(f"{path}: {describe_detection(det)}")
    if json_path is not None:
        _write_json(json_path, {"files": rows, "failed": failed})
    raise typer.Exit(1 if failed or (require and missing) else 0)


@app.command("ui")
def ui(
    port: int = typer.Option(0, "--port", min=0, max=65535, help="Port on 127.0.0.1 (0 = any free port)."),
    out: Path | None = typer.Option(
        None,
        "--out",
        "-o",
        file_okay=False,
        help="Output folder (default: ~/Pictures/protected); changeable on the page.",
    ),
    key: str | None = typer.Option(
        None,
        "--key",
        envvar=KEY_ENV,
        show_envvar=True,
        help="Your secret key (default: one generated and kept in your config folder).",
    ),
    no_browser: bool = typer.Option(False, "--no-browser", help="Only print the address; do not open a browser."),
    workers: int = typer.Option(0, "--workers", "-j", min=0, help="Parallel processes (0 = all cores)."),
) -> None:
    """Open the protect page in your browser: a local page (this computer only), English and Japanese.

    Needs the ui extra: pip install "protect-art[ui]".  Stop it with Ctrl+C.
    """
    from .ui import serve

    def announce(line: str) -> None:
        print(line, file=sys.stderr if line.startswith("error") else sys.stdout, flush=True)

    raise typer.Exit(
        serve(port=port, out_dir=out, key=key, open_browser=not no_browser, workers=workers, announce=announce)
    )


def _parse_attacks(spec: str | None, param_hint: str = "--attacks") -> list[str] | None:
    from .declutter import ATTACKS

    if spec is None:
        return None
    names = [n.strip() for n in spec.split(",") if n.strip()]
    if names == ["all"]:
        return list(ATTACKS)
    unknown = [n for n in names if n not in ATTACKS]
    if unknown or not names:
        raise typer.BadParameter(
            f"unknown attack {', '.join(unknown) or '(none given)'}; choose from {', '.join(ATTACKS)}",
            param_hint=param_hint,
        )
    return names


def _print_pair(rep) -> None:
    typer.echo(f"{rep.name}  ({rep.width}x{rep.height}, {rep.seconds:.1f} s)")
    typer.echo(
        f"  visibility: PSNR {rep.psnr:.2f} dB   SSIM {rep.ssim:.4f}   SSIMULACRA2 {rep.ssimulacra2:.2f}   "
        f"CIEDE2000 mean {rep.ciede2000_mean:.2f}, p99 {rep.ciede2000_p99:.2f}"
    )
    _print_attack_rows({a.attack: a.__dict__ for a in rep.attacks})
    from .report import plain_verdict

    for line in plain_verdict(rep):
        typer.echo(f"  verdict: {line}")


def _print_attack_rows(rows: dict) -> None:
    from .report import attack_table_text

    for line in attack_table_text(rows):
        typer.echo(line)


@app.command("verify")
def verify(
    original: Path = typer.Argument(..., exists=True, help="The original image, or a folder of originals."),
    protected: Path = typer.Argument(..., exists=True, help="The protected image, or the folder protect wrote."),
    json_path: Path | None = typer.Option(None, "--json", dir_okay=False, help="Write every figure here."),
    report_dir: Path | None = typer.Option(
        None, "--report", file_okay=False, help="Write contact sheets and index.html to this folder."
    ),
    attacks: str | None = typer.Option(
        None, "--attacks", help="Comma-separated attacks to run (default: all; see protect declutter -h)."
    ),
    min_psnr: float | None = typer.Option(None, "--min-psnr", help="Exit 1 if any PSNR (dB) is below this."),
    min_ssimulacra2: float | None = typer.Option(
        None, "--min-ssimulacra2", help="Exit 1 if any SSIMULACRA2 is below this."
    ),
    min_survival: float | None = typer.Option(
        None, "--min-survival", help="Exit 1 if survival after any attack run is below this (0-1)."
    ),
    surrogate_weights: Path | None = typer.Option(
        None,
        "--surrogate-weights",
        dir_okay=False,
        help="TAEF2 encoder weights (default: ../shared/models/taef2_encoder.pth "
        "when present; needs protect-art[surrogate]).",
    ),
    no_surrogate: bool = typer.Option(False, "--no-surrogate", help="Skip the latent footprint (much faster)."),
    surrogate_crop: int = typer.Option(
        512, "--surrogate-crop", min=64, help="Side of the centre crop the encoder sees (native pixels)."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the attacks' noise and the Gaussian comparison."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only failures and the final line."),
) -> None:
    """Measure protected images against their originals: visibility, declutter survival, latent footprint."""
    from .verify import Thresholds
    from .verify_run import load_surrogate, run_verify, write_json

    names = _parse_attacks(attacks)
    if original.is_dir() != protected.is_dir():
        raise typer.BadParameter("give two files or two folders", param_hint="ORIGINAL PROTECTED")
    surrogate = load_surrogate(surrogate_weights, enabled=not no_surrogate, crop=surrogate_crop)
    if surrogate_weights is not None and surrogate.encoder is None and not no_surrogate:
        _err(f"error: {surrogate.note}")
        raise typer.Exit(2)

    skipped_footprint: list[str] = []  # said once for the run, not once per image

    def on_pair(name, rep, error) -> None:
        if error is not None:
            _err(f"error: {name}: {error}")
        elif not quiet:
            _print_pair(rep)
            typer.echo("")
        if rep is not None and rep.footprint_note and rep.footprint_note not in skipped_footprint:
            skipped_footprint.append(rep.footprint_note)

    run = run_verify(
        original,
        protected,
        attacks=names,
        thresholds=Thresholds(min_psnr, min_ssimulacra2, min_survival),
        surrogate=surrogate,
        seed=seed,
        report_dir=report_dir,
        on_pair=on_pair,
    )
    if len(run.reports) > 1 and not quiet:
        from .verify import median_by_attack

        from .report import ATTACK_FIELDS

        med = {f: median_by_attack(run.reports, f) for f in ATTACK_FIELDS}
        typer.echo(f"median over {len(run.reports)} pairs")
        typer.echo(
            "  visibility: PSNR {:.2f} dB   SSIMULACRA2 {:.2f}".format(
                *(float(np.median([getattr(r, k) for r in run.reports])) for k in ("psnr", "ssimulacra2"))
            )
        )
        _print_attack_rows({n: {f: med[f][n] for f in ATTACK_FIELDS} for n in med["survival"]})
    if skipped_footprint and not quiet:
        typer.echo(f"latent footprint skipped: {'; '.join(skipped_footprint)}")
    for name, misses in run.failures.items():
        for miss in misses:
            _err(f"below threshold: {name}: {miss}")
    if json_path is not None:
        write_json(json_path, run)
    if report_dir is not None and not quiet:
        _err(f"protect: report written to {report_dir / 'index.html'}")
    missed = sum(1 for v in run.failures.values() if v)
    given = Thresholds(min_psnr, min_ssimulacra2, min_survival).given
    _err(
        f"protect verify: {len(run.reports)} verified, {len(run.errors)} failed, "
        f"{f'{missed} below threshold' if given else 'no thresholds given'}; "
        f"{run.seconds:.1f} s"
    )
    raise typer.Exit(run.exit_code)


def _attack_help() -> str:
    from .declutter import ATTACKS

    return "\n\n".join(f"{a.name}: {a.summary}" for a in ATTACKS.values())


@app.command("declutter", epilog="Attacks:\n\n" + _attack_help())
def declutter(
    source: Path = typer.Argument(..., exists=True, dir_okay=False, help="Image to purify."),
    out: Path = typer.Argument(..., help="Output file (one attack) or folder (several, or 'all')."),
    attack: list[str] = typer.Option(..., "--attack", "-a", help="Attack name, repeatable, or 'all'."),
    seed: int = typer.Option(0, "--seed", help="Seed of the attack's noise (noisy_upscale)."),
) -> None:
    """See what a scraper's clean-up does to an image (8-bit, transparency flattened on white)."""
    from .declutter import apply_attack
    from .verify import flatten_8bit

    names = _parse_attacks(",".join(attack), param_hint="--attack")
    assert names is not None  # a spec was given
    try:
        img = pio.read_image(source)
        fr = img.frames[0]
        flat = flatten_8bit(fr.pixels, fr.alpha, data_range_of(fr.pixels.dtype))
        single = len(names) == 1 and not out.is_dir()
        for name in names:
            dst = out if single else out / f"{source.stem}_{name}.png"
            attacked = apply_attack(name, flat, seed=seed)
            meta = pio.ImageFile([pio.Frame(attacked)], "PNG", icc_profile=img.icc_profile)
            pio.write_image(dst, meta, format=pio.normalise_format(dst.suffix.lstrip(".") or "png"))
            _err(f"{name}: {dst}")
    except (pio.InputError, OSError, ValueError) as exc:
        _fail(f"error: {source}: {describe_error(exc) if not isinstance(exc, ValueError) else exc}")


key_app = typer.Typer(
    help="Your secret key: where it is, show it, back it up, move it to another computer.", no_args_is_help=True
)
app.add_typer(key_app, name="key")


def _existing_key(how: str = ""):
    """The key you already have, or exit 1 saying you have none (protect makes one on first use``how``)."""
    r = _key(None, None, create=False)
    if r is None:
        _fail(f"error: you have no key yet (protect makes one on first use{how})")
    return r


@key_app.command("path")
def key_path_cmd() -> None:
    """Print where your key file is (or would be created)."""
    from .userdirs import key_file as _key_file

    typer.echo(str(_key_file()))


@key_app.command("show")
def key_show() -> None:
    """Print your key (keep it private: whoever has it can detect and remake your marks)."""
    typer.echo(_existing_key(", or protect key import FILE").key)


@key_app.command("export")
def key_export(
    dest: Path = typer.Argument(..., help="File to write your key to (it must not exist), or - for stdout."),
) -> None:
    """Back your key up to a file (0600) you keep somewhere safe; detect needs the same key."""
    from .userdirs import write_key_file

    r = _existing_key()
    if str(dest) == "-":
        typer.echo(r.key)
        return
    try:
        write_key_file(dest, r.key)
    except FileExistsError:
        _fail(f"error: {dest} exists; choose a new file name")
    except OSError as exc:
        _fail(f"error: cannot write {dest}: {exc.strerror or exc}")
    _err(f"protect: your key was written to {dest} (0600); keep it private")


@key_app.command("import")
def key_import(
    source: Path = typer.Argument(
        ..., help="A file holding the key (as written by protect key export), or - for stdin."
    ),
    force: bool = typer.Option(
        False, "--force", help="Replace a different key you already have (the old one is kept as key.old-TIMESTAMP)."
    ),
) -> None:
    """Make a backed-up key your key on this computer."""
    import time

    from .userdirs import key_file as _key_file
    from .userdirs import read_key_file, validate_key, write_key_file

    try:
        new = validate_key(sys.stdin.read(), "stdin") if str(source) == "-" else read_key_file(source)
    except FileNotFoundError:
        _fail(f"error: {source} does not exist")
    except KeyProblem as exc:
        _fail(f"error: {exc}")
    path = _key_file()
    try:
        old = read_key_file(path)
    except FileNotFoundError:
        old = None
    except KeyProblem:
        old = ""
    if old == new:
        _err(f"protect: {path} already holds this key")
        return
    if old is not None and not force:
        _fail(f"error: {path} already holds a different key; pass --force to replace it "
              "(the old one is kept beside it)")
    try:
        if old is not None:
            stamp = time.strftime("%Y%m%d-%H%M%S")
            backup = path.with_name(f"key.old-{stamp}")
            n = 1
            while backup.exists():
                n += 1
                backup = path.with_name(f"key.old-{stamp}-{n}")
            write_key_file(backup, old) if old else path.rename(backup)
        write_key_file(path, new, replace=old is not None)
    except OSError as exc:
        _fail(f"error: cannot write {path}: {exc.strerror or exc}")
    _err(f"protect: key imported to {path}" + (f" (the old key is in {backup})" if old is not None else ""))


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:  # outputs are written atomically: nothing half-written remains
        sys.stderr.write("\nprotect: interrupted; run the same command again to resume\n")
        sys.exit(130)
    except SystemExit as exc:
        if exc.code == 130:  # stopped by Ctrl-C, state saved: leave now, without waiting on the
            sys.stdout.flush()  # killed pool's threads at interpreter exit
            sys.stderr.flush()
            os._exit(130)
        raise


if __name__ == "__main__":  # pragma: no cover
    main()
