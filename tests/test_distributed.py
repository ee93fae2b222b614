"""protect on a real Dask cluster: a distributed.LocalCluster with 2 worker processes, and a
scheduler and workers started with the ``dask`` command line.  No mocks of Dask."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

distributed = pytest.importorskip("distributed")

from protect import batch, files  # noqa: E402
from protect.distributed import (ClusterError, ProtectPlugin, _protect_group, check_workers,  # noqa: E402
                                protect_many)
from protect.pipeline import Settings  # noqa: E402

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
KEY = "cluster-test-key"


def outputs(root: Path) -> dict[str, bytes]:
    """Every visible file under ``root`` (protect's state and temp files are hidden)."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and not any(x.startswith(".") for x in p.relative_to(root).parts)}


def art(tmp_path: Path, copies: int = 1) -> Path:
    src = tmp_path / "art"
    for i in range(copies):
        shutil.copytree(SAMPLES, src / f"set{i}" if copies > 1 else src, ignore=shutil.ignore_patterns("*.py"))
    return src


def local_run(src: Path, out: Path) -> batch.BatchReport:
    jobs = list(files.discover([src], out=out))
    return batch.run_batch(jobs, batch.Options(Settings(key=KEY)), workers=1)


def wait_for(pred, what: str, timeout: float = 90.0) -> None:
    t0 = time.monotonic()
    while not pred():
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def quiet_env(**extra: str) -> dict[str, str]:
    """The environment for dask and protect subprocesses: this protect first on an absolute path
    (their working folders differ), no key unless given, quiet logs."""
    env = {k: v for k, v in os.environ.items() if k != "PROTECT_KEY"}
    here = str(Path(batch.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join([here, *(str(Path(p).resolve()) for p in
                                                 os.environ.get("PYTHONPATH", "").split(os.pathsep) if p)])
    env.update({"DASK_LOGGING__DISTRIBUTED": "error", "DASK_DISTRIBUTED__WORKER__DAEMON": "False"}, **extra)
    return env


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    home = tmp_path_factory.mktemp("workers")
    env = {"PROTECT_KEY": KEY, "PROTECT_CONFIG_DIR": str(home / "config"), "PROTECT_CACHE_DIR": str(home / "cache")}
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  silence_logs=logging.CRITICAL, env=env) as cluster, \
            distributed.Client(cluster) as c:
        yield c


def test_cluster_outputs_identical_to_local_and_rerun_skips(client, tmp_path, monkeypatch):
    src = art(tmp_path)
    local = local_run(src, tmp_path / "local")
    seen = []
    rep = protect_many([src], out=tmp_path / "cluster", settings=Settings(strength=0.4), key=KEY, client=client,
                       on_result=seen.append)
    assert rep.exit_code == 0 and rep.protected == 8 and rep.failed == 0 and len(seen) == 8
    assert outputs(tmp_path / "cluster") == outputs(tmp_path / "local") and len(outputs(tmp_path / "local")) == 8
    by_src = {r.src: r for r in local.results}
    for r in rep.results:  # the same BatchReport rows, with the paths as given
        assert r.dst == str(tmp_path / "cluster" / Path(r.src).relative_to(src))
        assert (r.status, r.psnr, r.out_bytes, r.width) == (by_src[r.src].status, by_src[r.src].psnr,
                                                           by_src[r.src].out_bytes, by_src[r.src].width)
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "cluster").rglob("*") if p.name != "lock"}
    again = protect_many([src], out=tmp_path / "cluster", settings=Settings(key=KEY), client=client)
    assert (again.skipped, again.protected, again.exit_code) == (8, 0, 0)
    # the record is beside the outputs: a client with another cache folder skips too, and changed settings redo
    monkeypatch.setenv("PROTECT_CACHE_DIR", str(tmp_path / "another-client"))
    assert protect_many([src], out=tmp_path / "cluster", settings=Settings(key=KEY), client=client).skipped == 8
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    redo = protect_many([src], out=tmp_path / "cluster", settings=Settings(strength=0.5, key=KEY), client=client)
    assert redo.protected == 8


def test_numba_warmed_with_worker_threads(client):
    def look(dask_worker):
        import numba

        plugin = dask_worker.plugins["protect"]
        return plugin.numba_threads, numba.config.NUMBA_NUM_THREADS, "protect.kernels.generator" in sys.modules

    client.register_plugin(ProtectPlugin())
    assert list(client.run(look).values()) == [(1, 1, True)] * 2


def test_killed_worker_loses_and_corrupts_nothing(client, tmp_path):
    src = art(tmp_path, copies=3)  # 24 images
    local_run(src, tmp_path / "local")
    killed = []

    def kill_a_busy_worker(result) -> None:
        if killed:
            return
        busy = [w for w, keys in client.processing().items() if keys]
        if busy:
            pid = client.run(os.getpid, workers=[busy[0]])[busy[0]]
            os.kill(pid, signal.SIGKILL)
            killed.append(busy[0])

    rep = protect_many([src], out=tmp_path / "cluster", settings=Settings(key=KEY), client=client,
                       on_result=kill_a_busy_worker)
    assert killed, "no worker was busy to be killed"
    assert (rep.protected, rep.failed, rep.exit_code) == (24, 0, 0), [r.reason for r in rep.results if r.reason]
    assert outputs(tmp_path / "cluster") == outputs(tmp_path / "local")
    for name in outputs(tmp_path / "cluster"):
        Image.open(tmp_path / "cluster" / name).load()
    again = protect_many([src], out=tmp_path / "cluster", settings=Settings(key=KEY), client=client)
    assert again.skipped == 24


def test_task_on_a_worker_with_another_key_writes_nothing(client, tmp_path):
    """The per-task check (a worker that joins after the challenge with another key)."""
    Image.new("RGB", (32, 32), (200, 10, 10)).save(tmp_path / "a.png")
    jobs = list(files.discover([tmp_path / "a.png"], out=tmp_path / "out"))
    options = batch.Options(Settings(key=""))
    results = client.submit(_protect_group, jobs, options, b"nonce", "not-the-proof", pure=False).result()
    assert results[0].status == "failed" and "holds a different key than the client" in results[0].reason
    assert not (tmp_path / "out").exists()


def test_worker_with_a_different_key_is_refused(client, tmp_path):
    src = art(tmp_path)
    address = client.scheduler.address
    before = set(client.nthreads())
    intruder = subprocess.Popen([sys.executable, "-m", "dask", "worker", address, "--nthreads", "1", "--no-dashboard",
                                 "--name", "intruder"], env=quiet_env(PROTECT_KEY="another key"), cwd=tmp_path,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: len(client.nthreads()) == len(before) + 1, "the third worker")
        [stranger] = set(client.nthreads()) - before
        with pytest.raises(ClusterError) as err:
            protect_many([src], out=tmp_path / "cluster", settings=Settings(key=KEY), client=client)
        msg = str(err.value)
        assert msg.startswith("key check failed, nothing submitted")
        assert f"worker {stranger} holds a different key" in msg
        assert all(w not in msg for w in before)  # only the stranger is named
        assert not (tmp_path / "cluster").exists()
        assert KEY not in msg and "another key" not in msg
    finally:
        intruder.send_signal(signal.SIGINT)
        try:
            intruder.wait(timeout=30)
        except subprocess.TimeoutExpired:
            intruder.kill()
    wait_for(lambda: set(client.nthreads()) == before, "the third worker to leave")


def test_workers_that_cannot_see_the_files_are_refused(client, tmp_path):
    missing = tmp_path / "only-on-the-client" / "a.png"
    client.register_plugin(ProtectPlugin())
    with pytest.raises(ClusterError) as err:
        check_workers(client, KEY, probe=missing)
    assert str(err.value).startswith("worker check failed, nothing submitted: worker")
    assert f"cannot see {missing}" in str(err.value)
    assert "" in check_workers(client, KEY, probe=SAMPLES)  # the nonce and proof for the tasks


def test_no_client_key_and_c2pa_are_usage_errors(client, tmp_path):
    with pytest.raises(ClusterError, match="no key"):
        protect_many([art(tmp_path)], out=tmp_path / "o", settings=Settings(), client=client)
    opts = batch.Options(Settings(key=KEY), c2pa=(b"cert", b"private key"))
    with pytest.raises(ClusterError, match="C2PA"):
        protect_many([tmp_path / "art"], out=tmp_path / "o", settings=opts, client=client)


def test_cli_against_dask_command_line_scheduler_and_two_workers(tmp_path):
    """The issue's done-when: protect samples --scheduler tcp://127.0.0.1:PORT --out X writes the bytes of a
    local run."""
    work = tmp_path / "client"
    work.mkdir()
    shutil.copytree(SAMPLES, work / "samples", ignore=shutil.ignore_patterns("*.py"))
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    procs = [subprocess.Popen([sys.executable, "-m", "dask", "scheduler", "--host", "127.0.0.1", "--port", str(port),
                               "--no-dashboard"], env=quiet_env(), cwd=tmp_path,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        for i in range(2):
            procs.append(subprocess.Popen([sys.executable, "-m", "dask", "worker", address, "--nthreads", "1",
                                           "--no-dashboard", "--name", f"w{i}"],
                                          env=quiet_env(PROTECT_KEY=KEY), cwd=tmp_path,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        with distributed.Client(address, timeout="60s") as c:
            c.wait_for_workers(2, timeout=90)

        def protect(*args, key=KEY):
            return subprocess.run([sys.executable, "-m", "protect", *args, "--key", key], cwd=work,
                                  env=quiet_env(), capture_output=True, text=True, timeout=300)

        local = protect("samples", "--out", "local", "--workers", "1", "--json", "local.json")
        assert local.returncode == 0, local.stderr
        res = protect("samples", "--scheduler", address, "--out", "X", "--json", "x.json")
        assert res.returncode == 0, res.stderr
        assert outputs(work / "X") == outputs(work / "local") and len(outputs(work / "X")) == 8
        assert "8 protected, 0 up to date, 0 failed" in res.stderr
        rep = json.loads((work / "x.json").read_text())
        assert rep["protected"] == 8 and rep["exit_code"] == 0
        local = json.loads((work / "local.json").read_text())["files"]
        assert {f["src"] for f in rep["files"]} == {f["src"] for f in local}
        rerun = protect("samples", "--scheduler", address, "--out", "X")
        assert rerun.returncode == 0 and "0 protected, 8 up to date" in rerun.stderr
        wrong = protect("samples", "--scheduler", address, "--out", "Y", key="not the workers' key")
        assert wrong.returncode == 2 and not (work / "Y").exists()
        errors = [line for line in wrong.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and "hold a different key than this client" in errors[0], wrong.stderr
    finally:
        for p in reversed(procs):
            p.send_signal(signal.SIGINT)
        for p in reversed(procs):
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()


def test_cli_scheduler_needs_the_key_here_and_never_makes_one(tmp_path):
    from typer.testing import CliRunner

    from protect.cli import app

    res = CliRunner().invoke(app, [str(SAMPLES), "--scheduler", "tcp://127.0.0.1:9", "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and "give the workers' key here too" in res.output
    assert not (Path(os.environ["PROTECT_CONFIG_DIR"]) / "key").exists()  # no key generated for a cluster run
    dry = CliRunner().invoke(app, [str(SAMPLES), "--scheduler", "tcp://127.0.0.1:9", "--out", str(tmp_path / "o"),
                                   "--key", KEY, "--dry-run"])
    assert dry.exit_code == 0 and dry.output.count("would protect") == 8 and not (tmp_path / "o").exists()
