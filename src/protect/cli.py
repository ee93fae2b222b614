"""Command line: ``protect PATHS... [options]``.

Exit codes
----------
0  every file was protected or already up to date
1  at least one file failed (each failure is one line on stderr)
2  usage error (bad option, missing path)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer
from typer.core import TyperGroup

from . import __version__
from . import io as pio
from .batch import Options, default_workers, discover, run_batch, warm_jit
from .pipeline import Settings
from .userdirs import KEY_ENV, resolve_key


class _DefaultToRun(TyperGroup):
    """``protect PATHS...`` means ``protect run PATHS...``."""

    def parse_args(self, ctx, args: list[str]) -> list[str]:  # ctx: typer's (vendored) click Context
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h", "--version"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


app = typer.Typer(
    cls=_DefaultToRun,
    no_args_is_help=True,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    help="Protect artwork before posting it: low-visibility adversarial noise, measured.\n\n"
    "protect PATHS... is short for protect run PATHS...",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"protect {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version."),
) -> None:
    pass


def _err(msg: str) -> None:
    from tqdm import tqdm

    tqdm.write(msg, file=sys.stderr)


@app.command("run")
def run(
    paths: list[Path] = typer.Argument(..., help="Image files and folders (searched recursively).", exists=True),
    strength: float = typer.Option(0.4, "--strength", "-s", min=0.0, max=1.0,
                                   help="0 = unchanged ... 1 = strongest; 0.4 keeps the noise hard to see."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", file_okay=False,
                                       help="Write outputs here, keeping relative paths and names."),
    key: Optional[str] = typer.Option(None, "--key", envvar=KEY_ENV, show_envvar=True,
                                      help="Your secret key (default: one generated and kept in your config folder)."),
    mask: Optional[Path] = typer.Option(None, "--mask", exists=True,
                                        help="Greyscale mask (white = full strength, black = none), "
                                             "or a folder of masks matched by relative path."),
    workers: int = typer.Option(0, "--workers", "-j", min=0, help="Parallel processes (0 = all cores)."),
    fmt: Optional[str] = typer.Option(None, "--format", "-f",
                                      help="Output format: png, jpeg, webp, tiff, bmp, gif (default: same as input)."),
    jpeg_quality: int = typer.Option(95, "--jpeg-quality", min=1, max=100,
                                     help="JPEG quality (4:4:4 chroma), also used for lossy WebP."),
    max_pixels: int = typer.Option(pio.DEFAULT_MAX_PIXELS, "--max-pixels", min=1,
                                   help="Refuse images with more pixels than this."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Redo outputs even when they are up to date."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Only list what would be done."),
    json_path: Optional[Path] = typer.Option(None, "--json", dir_okay=False,
                                             help="Write per-file results (status, sizes, PSNR, time) here."),
    verify: bool = typer.Option(False, "--verify", help="Also measure SSIMULACRA2 of each output (slower)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar or summary; errors only."),
) -> None:
    """Protect images and folders of images; originals are never modified."""
    try:
        out_format = pio.normalise_format(fmt) if fmt else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--format") from None
    resolved = resolve_key(key)
    if resolved.created is not None and not quiet:
        _err(f"protect: created your secret key at {resolved.created} (keep it private; back it up)")
    options = Options(
        settings=Settings(strength=strength, key=resolved.key),
        format=out_format,
        jpeg_quality=jpeg_quality,
        max_pixels=max_pixels,
        verify=verify,
    )
    jobs = list(discover(paths, out=out, fmt=out_format, mask=mask))
    n_workers = workers or default_workers()
    if not dry_run and jobs:
        warm_jit()  # compile once here, before the bar starts

    from tqdm import tqdm

    bar = tqdm(total=len(jobs), unit="img", disable=quiet or not jobs, file=sys.stderr, dynamic_ncols=True)

    def on_result(r) -> None:
        if r.status == "failed":
            _err(f"error: {r.src}: {r.reason}")
        elif r.status == "would protect" and not quiet:
            _err(f"would protect {r.src} -> {r.dst}")

    try:
        report = run_batch(jobs, options, workers=n_workers, overwrite=overwrite, dry_run=dry_run,
                           on_result=on_result, progress=bar)
    finally:
        bar.close()
    if json_path is not None:
        pio.atomic_write_bytes(json_path, (json.dumps(report.to_json(), indent=2) + "\n").encode())
    if not quiet:
        if not jobs:
            _err("protect: no images found")
        _err(f"protect: {report.summary()}")
    raise typer.Exit(report.exit_code)


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:  # outputs are written atomically: nothing half-written remains
        sys.stderr.write("\nprotect: interrupted; run the same command again to resume\n")
        sys.exit(130)


if __name__ == "__main__":  # pragma: no cover
    main()
