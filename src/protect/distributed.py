"""The batch on a Dask cluster: ``protect PATHS --scheduler tcp://HOST:PORT``.

Needs the ``dask`` extra (``pip install 'protect-art[dask]'``).  Everything but
the pixels happens on the client, exactly as in a local run
(:func:`protect.batch.run_batch`): discovery, planning, the skip-if-done
record beside the outputs, the :class:`~protect.batch.BatchReport`, exit codes,
``--json`` and the progress bar (fed by completed futures).  Each task
protects one image (or a small group, ``group=``) with
:func:`protect.batch.protect_file` on a worker, which reads the source from
and writes the output to a filesystem that every machine mounts at the same
path, with the same atomic writes.

The key never travels in the task graph.  Every worker reads it from its
own environment when the :class:`ProtectPlugin` is set up (``PROTECT_KEY``,
else the file named by ``PROTECT_KEY_FILE``, else the user's key file; a
worker never generates one).  Before anything is submitted the client sends
every worker a random nonce and compares the answer, an HMAC of the nonce
under a key derived from the worker's key (scrypt), with its own; any
mismatch is one :class:`ClusterError` and nothing runs.  Each task carries
the nonce and the expected answer too, so a worker that joins later with
another key fails its files (one line each) instead of writing outputs
under the wrong key.

A worker that dies mid-run loses nothing: the scheduler runs its tasks
again elsewhere, and an output only appears by ``os.replace`` of a complete
file (a killed writer can leave a hidden ``.NAME.*.protect-tmp`` file,
never a partial output).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import os
import secrets
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .userdirs import KEY_ENV, key_file

if TYPE_CHECKING:  # pragma: no cover
    from .batch import FileResult, Options, BatchReport
    from .files import Job
    from .pipeline import Settings

__all__ = ["ClusterError", "KEY_FILE_ENV", "ProtectPlugin", "check_workers", "key_from_environment",
           "key_proof", "protect_many", "run_jobs"]

#: Environment variable naming a file that holds the key (on workers, and on the client).
KEY_FILE_ENV = "PROTECT_KEY_FILE"

#: Name under which :class:`ProtectPlugin` is registered on the workers.
PLUGIN_NAME = "protect"

#: Seconds to wait for the first worker to connect.
WAIT_FOR_WORKERS_S = 60.0


class ClusterError(Exception):
    """The cluster cannot run this batch (no dask, no workers, a key mismatch); one line for the user."""


def _need_distributed():
    try:
        import distributed
    except ImportError:
        raise ClusterError("running on a Dask cluster needs the dask extra: pip install 'protect-art[dask]'") from None
    return distributed


# ------------------------------------------------------------------------ the key


def key_from_environment() -> str | None:
    """This process's key: ``PROTECT_KEY``, else the file ``PROTECT_KEY_FILE`` names,
    else the user's key file; None when there is none (a key is never generated here).
    Raises :class:`ClusterError` when ``PROTECT_KEY_FILE`` names a file that cannot be read."""
    env = os.environ.get(KEY_ENV)
    if env:
        return env
    named = os.environ.get(KEY_FILE_ENV)
    path = Path(named) if named else key_file()
    try:
        key = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        if named:
            raise ClusterError(f"{KEY_FILE_ENV} names {path}, which does not exist") from None
        return None
    except OSError as exc:
        raise ClusterError(f"cannot read the key file {path}: {exc.strerror or exc}") from None
    return key or None


@functools.lru_cache(maxsize=8)
def _challenge_key(key: str) -> bytes:
    # slow and salted, so that an answer seen on the network costs a dictionary attack scrypt per guess
    return hashlib.scrypt(key.encode(), salt=b"protect-cluster-key-check-v1", n=2**14, r=8, p=1, dklen=32)


def key_proof(key: str, nonce: bytes) -> str:
    """The answer to the key check: HMAC-SHA256 of ``nonce`` under a key derived from ``key``."""
    return hmac.new(_challenge_key(key), b"protect key check\x00" + nonce, hashlib.sha256).hexdigest()


# ------------------------------------------------------------------ worker side


try:  # the plugin is a real WorkerPlugin when dask is installed; the module imports without it
    from distributed.diagnostics.plugin import WorkerPlugin as _WorkerPluginBase
except ImportError:  # pragma: no cover - protect without the dask extra
    _WorkerPluginBase = object  # type: ignore[misc,assignment]


class ProtectPlugin(_WorkerPluginBase):
    """Set up once per worker: ``NUMBA_NUM_THREADS`` = the worker's threads, the
    worker's own key read from its environment, and the numba kernels compiled
    (or loaded from their on-disk cache), so the first task does not pay for it.

    The plugin is pickled on the client before :meth:`setup` runs, so it never
    carries a key; it drops the key if it is ever pickled again.
    """

    name = PLUGIN_NAME

    def __init__(self, mark: bool = False):
        self.mark = mark  # also warm the watermark kernels
        self.key: str | None = None
        self.problem: str | None = None  # why this worker has no usable key
        self.numba_threads: int | None = None

    def __getstate__(self) -> dict:
        return {"mark": self.mark}

    def __setstate__(self, state: dict) -> None:
        ProtectPlugin.__init__(self, state["mark"])

    def setup(self, worker) -> None:
        threads = max(1, int(getattr(worker.state, "nthreads", None) or getattr(worker, "nthreads", 1) or 1))
        os.environ["NUMBA_NUM_THREADS"] = str(threads)  # read by numba when it is first imported, just below
        import numba

        if getattr(numba.config, "NUMBA_NUM_THREADS") != threads:  # noqa: B009 - set at import, unknown to mypy  # numba came in earlier (e.g. with a script's imports)
            try:  # re-read the environment; protect's kernels are serial, so no thread pool has started
                numba.core.config.reload_config()
            except Exception:  # noqa: BLE001 - only the thread count is at stake  # pragma: no cover
                pass
        self.numba_threads = int(getattr(numba.config, "NUMBA_NUM_THREADS"))  # noqa: B009
        try:
            self.key = key_from_environment()
            if self.key is None:
                self.problem = f"has no key: set {KEY_ENV} or {KEY_FILE_ENV} in the worker's environment"
        except ClusterError as exc:
            self.problem = str(exc)
        from .batch import warm_jit

        warm_jit(mark=self.mark)

    def teardown(self, worker) -> None:
        self.key = None


def _plugin_of(worker) -> ProtectPlugin | None:
    plugin = worker.plugins.get(PLUGIN_NAME) if worker is not None else None
    return plugin if isinstance(plugin, ProtectPlugin) else None


def _worker_answer(nonce: bytes, probe: str | None, dask_worker=None) -> dict:
    """Run on every worker by :func:`check_workers` (``Client.run``)."""
    plugin = _plugin_of(dask_worker)
    if plugin is None:
        return {"proof": None, "problem": "has not set up protect's worker plugin", "sees": None, "numba_threads": None}
    sees = None if probe is None else os.path.exists(probe)
    proof = key_proof(plugin.key, nonce) if plugin.key else None
    return {"proof": proof, "problem": plugin.problem, "sees": sees, "numba_threads": plugin.numba_threads}


def _protect_group(jobs: list[Job], options: Options, nonce: bytes, proof: str) -> list[FileResult]:
    """One task: protect ``jobs`` on this worker with the worker's own key."""
    from distributed import get_worker

    from .batch import FileResult, Status, protect_file

    try:
        worker = get_worker()
    except ValueError:  # pragma: no cover - not on a worker
        worker = None
    plugin = _plugin_of(worker)
    key = plugin.key if plugin is not None else key_from_environment()
    where = f"worker {worker.address}" if worker is not None else "this worker"
    if not key or not hmac.compare_digest(key_proof(key, nonce), proof):
        why = "has no key" if not key else "holds a different key than the client"
        reason = f"{where} {why}; nothing written"
        return [FileResult(str(j.src), str(j.dst), Status.FAILED, reason=reason) for j in jobs]
    keyed = replace(options, settings=replace(options.settings, key=key))
    return [protect_file(job, keyed) for job in jobs]


# ------------------------------------------------------------------ client side


def check_workers(client, key: str, *, probe: Path | None = None) -> dict[str, dict]:
    """The keyed challenge: every worker must answer ``key_proof(key, nonce)`` for a
    fresh random nonce (and see ``probe``, when given).  Returns the answers,
    with the nonce and the expected proof under ``""``; raises
    :class:`ClusterError` naming the workers that fail."""
    nonce = secrets.token_bytes(32)
    expected = key_proof(key, nonce)
    answers = client.run(_worker_answer, nonce, str(probe) if probe is not None else None)
    if not answers:
        raise ClusterError("no workers are connected to the scheduler")
    problems = []
    wrong = sorted(w for w, a in answers.items() if a["proof"] and not hmac.compare_digest(a["proof"], expected))
    if wrong:
        problems.append(f"{_names(wrong)} hold{'s' if len(wrong) == 1 else ''} a different key than this client "
                        f"(set the same {KEY_ENV} or {KEY_FILE_ENV} on every worker)")
    for w, a in sorted(answers.items()):
        if a["proof"] is None:
            problems.append(f"worker {w} {a['problem']}")
    what = "key check" if problems else "worker check"
    blind = sorted(w for w, a in answers.items() if a["sees"] is False)
    if blind:
        problems.append(f"{_names(blind)} cannot see {probe} (inputs and outputs must be on a filesystem "
                        "every worker mounts at the same path)")
    if problems:
        raise ClusterError(f"{what} failed, nothing submitted: " + "; ".join(problems))
    return {**answers, "": {"nonce": nonce, "proof": expected}}


def _names(workers: list[str]) -> str:
    return ("worker " if len(workers) == 1 else "workers ") + ", ".join(workers)


def _absolute(job: Job) -> Job:
    """Workers have their own working folders: send them absolute paths."""
    return replace(job, src=job.src.absolute(), dst=job.dst.absolute(),
                   mask=job.mask.absolute() if job.mask is not None else None)


def _connect(client):
    distributed = _need_distributed()
    if client is None:
        try:
            return distributed.default_client(), False
        except ValueError:
            raise ClusterError("no Dask client: pass client= (a distributed.Client or a scheduler address)") from None
    if isinstance(client, str):
        try:
            return distributed.Client(client, timeout="20s"), True
        except (OSError, TimeoutError) as exc:
            raise ClusterError(f"cannot reach the Dask scheduler at {client}: {exc}") from None
    return client, False


def _cluster_runner(client, nonce: bytes, proof: str, *, group: int, window: int | None) -> Callable:
    """A ``runner`` for :func:`protect.batch.run_batch` that protects the planned jobs on ``client``'s
    cluster, at most ``window`` tasks in flight (so a million jobs are not a million futures)."""
    from distributed import as_completed

    from .batch import FileResult, Status, mask_key

    def run(todo: list[Job], options: Options, finish: Callable[[Job, FileResult], None]) -> None:
        if not todo:
            return
        remote = replace(options, settings=replace(options.settings, key=""))  # the key stays here
        groups = [todo[i:i + group] for i in range(0, len(todo), group)]
        threads = sum(client.nthreads().values()) or 1
        limit = window or max(8, 4 * threads)
        tag = secrets.token_hex(4)
        pending: dict[Any, list[Job]] = {}
        done = as_completed()
        it = iter(enumerate(groups))

        def submit_next() -> None:
            nxt = next(it, None)
            if nxt is not None:
                i, jobs = nxt
                fut = client.submit(_protect_group, [_absolute(j) for j in jobs], remote, nonce, proof,
                                    key=f"protect-{tag}-{i}", pure=False)
                pending[fut] = jobs
                done.add(fut)

        try:
            for _ in range(limit):
                submit_next()
            for fut in done:
                jobs = pending.pop(fut)
                try:
                    results = fut.result()
                except Exception as exc:  # noqa: BLE001 - a task that kept killing workers fails its files only
                    reason = mask_key(f"failed on the cluster: {type(exc).__name__}: {exc}", options.settings.key)
                    results = [FileResult(str(j.src), str(j.dst), Status.FAILED, reason=reason) for j in jobs]
                fut.release()
                submit_next()
                for job, r in zip(jobs, results, strict=False):
                    r.src, r.dst = str(job.src), str(job.dst)  # the paths as the user gave them
                    finish(job, r)
        finally:
            if pending:
                client.cancel(list(pending))

    return run


def run_jobs(jobs: list[Job], options: Options, *, client=None, overwrite: bool = False, dry_run: bool = False,
             on_result=None, progress=None, group: int = 1, window: int | None = None) -> BatchReport:
    """:func:`protect.batch.run_batch` on a Dask cluster (``client``: a ``distributed.Client``,
    a scheduler address, or None for the current default client).

    ``options.settings.key`` is the client's key; it is only used for the key
    check and the skip-if-done record and is never sent to the workers.
    """
    from .batch import run_batch

    if not options.settings.key:
        raise ClusterError(f"no key on the client: pass it (or set {KEY_ENV}) to check the workers hold the same")
    if options.c2pa is not None:
        raise ClusterError("C2PA signing is not supported on a cluster: its private key would travel to the workers")
    if dry_run:
        return run_batch(jobs, options, overwrite=overwrite, dry_run=True, on_result=on_result, progress=progress)
    client, own = _connect(client)
    try:
        try:
            client.wait_for_workers(1, timeout=WAIT_FOR_WORKERS_S)
        except TimeoutError:
            raise ClusterError(f"no worker connected to the scheduler within {WAIT_FOR_WORKERS_S:.0f} s") from None
        try:
            client.register_plugin(ProtectPlugin(mark=options.mark is not None))
        except Exception as exc:  # noqa: BLE001 - e.g. a worker without protect, or an older one
            raise ClusterError(f"a worker could not set protect up ({type(exc).__name__}: {exc}); install the same "
                               "protect, with its dask extra, on every worker") from None
        probe = jobs[0].src.absolute() if jobs else None
        answers = check_workers(client, options.settings.key, probe=probe)
        runner = _cluster_runner(client, answers[""]["nonce"], answers[""]["proof"], group=max(1, int(group)),
                                 window=window)
        return run_batch(jobs, options, overwrite=overwrite, on_result=on_result, progress=progress, runner=runner)
    finally:
        if own:
            client.close()


def protect_many(paths: Iterable[str | os.PathLike], out: str | os.PathLike | None = None,
                 settings: Settings | Options | None = None, client=None, *, key: str | None = None,
                 overwrite: bool = False, mask: str | os.PathLike | None = None, on_result=None, progress=None,
                 group: int = 1, window: int | None = None) -> BatchReport:
    """Protect image files and folders on a Dask cluster; the Python face of
    ``protect PATHS --scheduler ADDRESS``.

    ``paths``, ``out`` and ``mask`` follow the command line's rules (folder
    ``X`` -> ``X_protected/``, or the same tree under ``out``).  ``settings``
    is a :class:`~protect.pipeline.Settings` or a full
    :class:`~protect.batch.Options`; the client's key is ``key``, else the one
    in ``settings``, else this process's environment (``PROTECT_KEY``,
    ``PROTECT_KEY_FILE``, the key file).  ``client`` is a
    ``distributed.Client``, a scheduler address, or None for the current
    client.  Every worker must hold the same key in its own environment.
    Returns the :class:`~protect.batch.BatchReport` (``report.exit_code`` as the CLI's).
    """
    from .batch import Options
    from .files import discover
    from .pipeline import Settings

    options = settings if isinstance(settings, Options) else Options(settings if settings is not None else Settings())
    key = key or options.settings.key or key_from_environment()
    if not key:
        raise ClusterError(f"no key: pass key=..., or set {KEY_ENV} (the same as on the workers)")
    options = replace(options, settings=replace(options.settings, key=key))
    jobs = list(discover([Path(p) for p in paths], out=Path(out) if out is not None else None, fmt=options.format,
                         mask=Path(mask) if mask is not None else None))
    return run_jobs(jobs, options, client=client, overwrite=overwrite, on_result=on_result, progress=progress,
                    group=group, window=window)
