"""Ctrl-C and concurrent runs (issue 13): a real SIGINT to a two-worker run, a lock per
output folder."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import textured
from PIL import Image

from protect import batch

ROOT = Path(__file__).resolve().parents[1]


def _start(args, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "PROTECT_KEY": "interrupt-test-key"}
    return subprocess.Popen([sys.executable, "-m", "protect", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, start_new_session=True)


@pytest.fixture
def started():
    """Processes started by a test; their whole groups are killed afterwards, even when it fails."""
    procs = []
    yield procs
    for p in procs:
        try:  # the group, even when its leader is gone: no worker may outlive the test
            os.killpg(p.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        p.wait()


def _art(folder: Path, n: int) -> Path:
    folder.mkdir()
    for i in range(n):
        Image.fromarray(textured(320, 400, seed=i)).save(folder / f"{i:02d}.png")
    return folder


def _outputs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*.png")) if folder.is_dir() else []


def _wait_for_outputs(folder: Path, n: int, proc, limit: float = 240.0) -> None:
    t0 = time.monotonic()
    while len(_outputs(folder)) < n:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() - t0 < limit, "no progress"
        time.sleep(0.05)


def test_real_sigint_to_a_two_worker_run_stops_fast_and_resumes(tmp_path, started):
    src = _art(tmp_path / "art", 40)
    out = tmp_path / "art_protected"
    proc = _start([src, "--workers", "2"], tmp_path)
    started.append(proc)
    _wait_for_outputs(out, 2, proc)
    t0 = time.monotonic()
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal sends: the whole process group
    _, err = proc.communicate(timeout=60)
    stopped_after = time.monotonic() - t0
    assert proc.returncode == 130, err
    assert stopped_after < 5.0, stopped_after  # the goal is 2 s; a loaded CI machine gets some slack
    line = [x for x in err.splitlines() if "stopped:" in x]
    assert line and "left" in line[0] and "run the same command to resume" in line[0], err
    done = int(line[0].split("stopped: ")[1].split(" done")[0])
    left = int(line[0].split(", ")[1].split(" left")[0])
    assert done + left == 40 and left > 0
    names = [p.name for p in out.iterdir()]
    assert not [n for n in names if n.endswith(".protect-tmp")], names  # nothing half-written
    for p in _outputs(out):
        Image.open(p).load()
    assert len(_outputs(out)) == done
    # the same command resumes: what was done is skipped
    proc = _start([src, "--workers", "2"], tmp_path)
    started.append(proc)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    assert f"{40 - done} protected, {done} up to date, 0 failed" in err


def test_a_second_sigint_never_hangs(tmp_path, started):
    src = _art(tmp_path / "art", 30)
    proc = _start([src, "--workers", "2"], tmp_path)
    started.append(proc)
    _wait_for_outputs(tmp_path / "art_protected", 1, proc)
    os.killpg(proc.pid, signal.SIGINT)
    time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)
    proc.communicate(timeout=30)  # stdout and stderr close only when no worker is left either
    assert proc.returncode == 130


def test_a_second_run_on_the_same_output_folder_is_refused(tmp_path, started):
    src = _art(tmp_path / "art", 2)
    out = tmp_path / "art_protected"
    with batch.OutputLocks([out]):  # another run holds the folder
        proc = _start([src, "--workers", "1"], tmp_path)
        started.append(proc)
        _, err = proc.communicate(timeout=300)
    assert proc.returncode == 1
    [line] = [x for x in err.splitlines() if x.startswith("error:")]
    assert "another protect run" in line and f"(pid {os.getpid()})" in line and str(out) in line
    assert not _outputs(out)
    proc = _start([src, "--workers", "1"], tmp_path)  # lock released: it runs
    started.append(proc)
    assert proc.communicate(timeout=300) and proc.returncode == 0
