"""The parent side of the local runner: a small pool of worker processes (SPEC §7).

Why not ``concurrent.futures.ProcessPoolExecutor``: when one of its workers
dies it terminates the others, fails every pending future without saying which
task or exit code was involved, and refuses later submissions. This pool keeps
one pipe per worker and gives each idle worker one task at a time, so it always
knows which task a dead worker was running.

Threads in the server process:

- the caller's thread only appends to a list and writes one byte to a wake-up
  pipe (:meth:`LocalPool.submit`), never touching a process or the database;
- the *dispatcher* thread owns everything else: it starts the workers (so the
  Linux parent-death signal is tied to a thread that lives as long as the
  pool), keeps the ready FIFO and the heap of delayed tasks, waits on the
  worker pipes and process sentinels, runs the hard-timeout watchdog, replaces
  dead workers and performs the shutdown;
- the *recorder* thread writes FAILED records for tasks whose worker died, so
  a slow database never stalls the dispatcher.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import json
import logging
import multiprocessing
import os
import queue
import signal
import threading
import time
import traceback
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from multiprocessing import resource_tracker
from multiprocessing.connection import wait
from typing import TYPE_CHECKING, Any

from lambda_tasks_core import LambdaTasksError
from lambda_tasks_local.worker import run_worker

if TYPE_CHECKING:
    import datetime
    from multiprocessing.connection import Connection
    from multiprocessing.process import BaseProcess

    from lambda_tasks_django import TaskInvocation

__all__ = [
    "HARD_TIMEOUT_GRACE",
    "TERMINATE_GRACE",
    "Job",
    "LocalPool",
    "PoolState",
    "WorkerDied",
]

logger = logging.getLogger("lambda_tasks.local")

#: Seconds a task may run past its hard timeout (whose SIGALRM it ignored, e.g.
#: stuck in C code) before the parent kills its worker.
HARD_TIMEOUT_GRACE = 2.0
#: At shutdown, seconds the workers get to exit (idle ones on a stop message, busy
#: ones on SIGTERM) before the remaining ones get SIGKILL.
TERMINATE_GRACE = 1.0
#: Longest wait before restarting workers whose ``django.setup()`` failed.
MAX_RESTART_BACKOFF = 30.0
#: The dispatcher wakes at least this often even when nothing happens.
_MAX_IDLE_WAIT = 1.0


class WorkerDied(LambdaTasksError):
    """Recorded as the traceback of a task whose worker process died while running it."""


@dataclass(slots=True)
class Job:
    """One attempt to run: what crosses to a worker (the JSON body) plus bookkeeping."""

    invocation_id: str
    body: str
    task_name: str
    n_retries: int
    queue: str
    delay: float = 0
    requeued: bool = False

    @classmethod
    def from_invocation(cls, invocation: TaskInvocation) -> Job:
        invocation = invocation.with_id()
        assert invocation.invocation_id is not None
        message = invocation.message
        return cls(
            invocation_id=invocation.invocation_id,
            body=invocation.body(),
            task_name=message.task_name,
            n_retries=message.n_retries,
            queue=invocation.queue,
            delay=invocation.delay,
        )

    def describe(self) -> str:
        return f"{self.task_name} (invocation {self.invocation_id}, attempt {self.n_retries + 1})"


@dataclass(frozen=True)
class PoolState:
    """A snapshot of the pool, for diagnostics and tests."""

    workers: int
    pids: tuple[int, ...] = ()
    ready_pids: tuple[int, ...] = ()
    running: dict[int, str] = field(default_factory=dict)  # pid → invocation id
    queued: int = 0
    delayed: int = 0
    submitted: int = 0
    stopped: bool = False


@dataclass
class _Worker:
    process: BaseProcess
    conn: Connection[Any, Any]
    pid: int
    ready: bool = False
    job: Job | None = None
    started: bool = False  # the worker said it started ``job``
    started_at: float = 0.0
    started_wall: datetime.datetime | None = None
    hard_timeout: float | None = None
    kill_reason: str | None = None
    setup_failed: bool = False


@dataclass(frozen=True)
class _Failure:
    job: Job
    cause: str
    started_wall: datetime.datetime | None


class LocalPool:
    """``workers`` processes running tasks for this (server) process."""

    def __init__(
        self,
        workers: int,
        *,
        settings_module: str | None = None,
        overrides: dict[str, Any] | None = None,
    ) -> None:
        if workers < 1:
            raise ValueError("a local pool needs at least one worker")
        self.size = workers
        self._settings_module = settings_module
        self._overrides = dict(overrides or {})
        self._context = multiprocessing.get_context("spawn")
        self._lock = threading.Lock()
        self._incoming: list[tuple[float, Job]] = []
        self._stopping = False
        self._submitted = 0
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._thread = threading.Thread(
            target=self._run, name="lambda-tasks-local-dispatcher", daemon=True
        )
        self._recorder = _Recorder()
        self._state = PoolState(workers=workers)
        # Dispatcher-thread state.
        self._workers: list[_Worker] = []
        self._ready: deque[Job] = deque()
        self._delayed: list[tuple[float, int, Job]] = []
        self._seq = itertools.count()
        self._restart_at = 0.0
        self._backoff = 0.0
        self._started = False
        self._closed = False

    # ------------------------------------------------------------------ caller side

    def start(self) -> None:
        """Start the dispatcher, which starts the workers in the background."""
        with self._lock:
            if self._started:
                return
            self._started = True
        self._recorder.start()
        self._thread.start()

    def submit(self, jobs: Iterable[Job]) -> None:
        """Queue jobs (each waits for its ``delay``); returns at once."""
        now = time.monotonic()
        with self._lock:
            if self._stopping:
                for job in jobs:
                    logger.warning("Local runner is shut down: task %s was not run", job.describe())
                return
            for job in jobs:
                self._incoming.append((now + job.delay, job))
                self._submitted += 1
            self._wake_locked()

    def state(self) -> PoolState:
        """The latest snapshot published by the dispatcher."""
        with self._lock:
            submitted = self._submitted
        state = self._state
        return PoolState(
            workers=state.workers,
            pids=state.pids,
            ready_pids=state.ready_pids,
            running=dict(state.running),
            queued=state.queued,
            delayed=state.delayed,
            submitted=submitted,
            stopped=state.stopped,
        )

    def shutdown(self) -> None:
        """Stop the pool; idempotent.

        Tasks not started are logged at WARNING as not run. Running tasks are
        interrupted (SIGTERM raises ``WorkerStopped`` in them, recorded FAILED);
        a worker still alive ``TERMINATE_GRACE`` s later is killed. Blocks for
        about that long at most, plus the recorder's last database writes.
        """
        with self._lock:
            if self._stopping:
                already = True
            else:
                already = False
                self._stopping = True
            started = self._started
        if not already:
            with self._lock:
                self._wake_locked()
        if started and self._thread is not threading.current_thread():
            self._thread.join(TERMINATE_GRACE + 10)
        if not started:
            self._close_wake_pipe()

    def _wake_locked(self) -> None:
        """Wake the dispatcher (hold ``_lock``: the pipe is closed under it)."""
        if self._closed:
            return
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._wake_w, b"\0")

    def _close_wake_pipe(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    # ------------------------------------------------------------------ dispatcher

    def _run(self) -> None:
        # Worker processes inherit this thread's signal mask: with SIGINT blocked
        # a Ctrl+C cannot interrupt a worker before it ignores SIGINT itself.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            while True:
                try:
                    if not self._step():
                        break
                except Exception:
                    logger.exception("Local runner: unexpected error in the dispatcher")
                    time.sleep(0.1)
        finally:
            try:
                self._stop_workers()
            finally:
                self._recorder.stop()
                self._publish(stopped=True)
                self._close_wake_pipe()

    def _step(self) -> bool:
        with self._lock:
            incoming, self._incoming = self._incoming, []
            stopping = self._stopping
        for due, job in incoming:
            self._schedule(job, due)
        if stopping:
            return False
        now = time.monotonic()
        self._spawn_missing(now)
        while self._delayed and self._delayed[0][0] <= now:
            self._ready.append(heapq.heappop(self._delayed)[2])
        self._assign()
        self._publish()
        timeout = self._next_wakeup(now)
        ready = wait(self._waitables(), timeout)
        self._drain_wake()
        self._handle(ready)
        self._watchdog()
        return True

    def _schedule(self, job: Job, due: float) -> None:
        if due <= time.monotonic():
            self._ready.append(job)
        else:
            heapq.heappush(self._delayed, (due, next(self._seq), job))

    def _spawn_missing(self, now: float) -> None:
        if now < self._restart_at:
            return
        while len(self._workers) < self.size:
            try:
                self._workers.append(self._spawn())
            except Exception:
                logger.exception("Local runner: could not start a worker process")
                self._backoff_restart()
                return

    def _spawn(self) -> _Worker:
        parent_conn, child_conn = self._context.Pipe(duplex=True)
        process = self._context.Process(
            target=run_worker,
            args=(child_conn, os.getpid(), self._settings_module, self._overrides),
            name="lambda-tasks-local-worker",
        )
        # The resource tracker's start unblocks SIGINT in this thread: start it
        # first, then block SIGINT again for the worker to inherit.
        resource_tracker.ensure_running()
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            process.start()
        finally:
            child_conn.close()
        assert process.pid is not None
        logger.debug("Local runner: started worker pid %s", process.pid)
        return _Worker(process=process, conn=parent_conn, pid=process.pid)

    def _backoff_restart(self) -> None:
        self._backoff = min(max(self._backoff * 2, 1.0), MAX_RESTART_BACKOFF)
        self._restart_at = time.monotonic() + self._backoff

    def _assign(self) -> None:
        for worker in self._workers:
            if not self._ready:
                return
            if not worker.ready or worker.job is not None or worker.kill_reason is not None:
                continue
            job = self._ready.popleft()
            try:
                worker.conn.send(("run", job.invocation_id, job.body))
            except OSError:
                # The worker is dying: its sentinel will tell; the job goes back.
                self._ready.appendleft(job)
                worker.ready = False
                continue
            worker.job = job
            worker.started = False
            worker.hard_timeout = None

    def _next_wakeup(self, now: float) -> float:
        deadlines = [now + _MAX_IDLE_WAIT]
        if self._delayed:
            deadlines.append(self._delayed[0][0])
        if len(self._workers) < self.size:
            deadlines.append(self._restart_at)
        for worker in self._workers:
            if worker.started and worker.hard_timeout is not None and worker.kill_reason is None:
                deadlines.append(worker.started_at + worker.hard_timeout + HARD_TIMEOUT_GRACE)
        return max(0.0, min(deadlines) - now)

    def _waitables(self) -> list[Any]:
        objects: list[Any] = [self._wake_r]
        for worker in self._workers:
            objects.append(worker.conn)
            objects.append(worker.process.sentinel)
        return objects

    def _drain_wake(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            while os.read(self._wake_r, 4096):
                pass

    def _handle(self, ready: list[Any]) -> None:
        for worker in list(self._workers):
            if worker.conn in ready:
                self._read(worker)
            if worker.process.sentinel in ready:
                self._reap(worker)

    def _read(self, worker: _Worker) -> None:
        """Handle every message the worker has sent so far."""
        try:
            while worker.conn.poll():
                self._on_message(worker, worker.conn.recv())
        except (EOFError, OSError):
            pass  # the worker is gone: its sentinel is (or soon will be) ready
        except Exception:
            logger.exception("Local runner: unreadable message from worker pid %s", worker.pid)

    def _on_message(self, worker: _Worker, message: Any) -> None:
        kind = message[0]
        if kind == "ready":
            worker.ready = True
            self._backoff = 0.0
            logger.debug("Local runner: worker pid %s is ready", worker.pid)
        elif kind == "setup_failed":
            worker.setup_failed = True
            logger.error(
                "Local runner: worker pid %s could not set up Django:\n%s", worker.pid, message[1]
            )
            self._backoff_restart()
        elif kind == "started":
            _, invocation_id, _n_retries, pid, hard = message
            from django.utils import timezone

            worker.started = True
            worker.started_at = time.monotonic()
            worker.started_wall = timezone.now()
            worker.hard_timeout = float(hard)
            if pid != worker.pid or (worker.job and worker.job.invocation_id != invocation_id):
                logger.error(
                    "Local runner: worker pid %s says pid %s started invocation %s, expected %s",
                    worker.pid,
                    pid,
                    invocation_id,
                    worker.job.invocation_id if worker.job else None,
                )
        elif kind == "done":
            _, invocation_id, _n_retries, status, duplicate, retry, retry_id = message
            job = self._finish(worker)
            logger.debug(
                "Local runner: %s ended %s%s",
                job.describe() if job else invocation_id,
                status,
                " (duplicate)" if duplicate else "",
            )
            if retry is not None:
                self._enqueue_serialized([(retry_id, retry)])
        elif kind == "error":
            _, invocation_id, _n_retries, error_kind, text = message
            job = self._finish(worker)
            what = job.describe() if job else f"invocation {invocation_id}"
            if error_kind == "in_progress":
                logger.warning(
                    "Local runner: dropped %s: %s. In local mode nothing redelivers a "
                    "message, so this attempt will not run again.",
                    what,
                    text,
                )
            else:
                logger.error(
                    "Local runner: task %s raised in worker pid %s:\n%s", what, worker.pid, text
                )
        elif kind == "enqueue":
            self._enqueue_serialized(message[1])
        else:
            logger.error("Local runner: unknown message %r from worker pid %s", kind, worker.pid)

    def _finish(self, worker: _Worker) -> Job | None:
        job = worker.job
        worker.job = None
        worker.started = False
        worker.started_wall = None
        worker.hard_timeout = None
        return job

    def _enqueue_serialized(self, items: list[tuple[str, dict[str, Any]]]) -> None:
        from dataclasses import replace

        from lambda_tasks_django import TaskInvocation

        for invocation_id, data in items:
            try:
                invocation = replace(TaskInvocation.from_dict(data), invocation_id=invocation_id)
                job = Job.from_invocation(invocation)
            except Exception:
                logger.exception("Local runner: could not schedule invocation %s", invocation_id)
                continue
            if self._stopping_now():
                logger.warning("Local runner is shutting down: task %s was not run", job.describe())
                continue
            self._schedule(job, time.monotonic() + job.delay)

    def _stopping_now(self) -> bool:
        with self._lock:
            return self._stopping

    def _reap(self, worker: _Worker) -> None:
        """A worker process ended: record what it was running; it is replaced later."""
        self._read(worker)  # an outcome sent just before dying still counts
        worker.process.join(0.1)
        code = worker.process.exitcode
        self._workers.remove(worker)
        self._dispose(worker)
        stopping = self._stopping_now()
        job = worker.job
        if job is None:
            if stopping:
                return
            if worker.setup_failed:
                return
            if not worker.ready:
                logger.error(
                    "Local runner: worker pid %s ended before it was ready (%s); retrying later",
                    worker.pid,
                    describe_exit(code),
                )
                self._backoff_restart()
            else:
                logger.warning(
                    "Local runner: idle worker pid %s ended (%s); starting a replacement",
                    worker.pid,
                    describe_exit(code),
                )
            return
        if not worker.started:
            # It never started the task (no record written): run it elsewhere, once.
            if stopping:
                logger.warning("Local runner shutting down: task %s was not run", job.describe())
            elif job.requeued:
                self._fail(job, worker, code)
            else:
                job.requeued = True
                self._ready.appendleft(job)
                logger.warning(
                    "Local runner: worker pid %s ended (%s) before starting %s; it will run on "
                    "another worker",
                    worker.pid,
                    describe_exit(code),
                    job.describe(),
                )
            return
        self._fail(job, worker, code)

    def _fail(self, job: Job, worker: _Worker, code: int | None) -> None:
        cause = worker.kill_reason or (
            f"the local worker process (pid {worker.pid}) running this task died: "
            f"{describe_exit(code)}"
        )
        if self._stopping_now():
            logger.warning("Local runner shutting down: task %s: %s", job.describe(), cause)
        else:
            logger.error(
                "Local runner: task %s failed: %s. Recorded as FAILED; a replacement worker "
                "starts.",
                job.describe(),
                cause,
            )
        self._recorder.put(_Failure(job, cause, worker.started_wall))

    def _dispose(self, worker: _Worker) -> None:
        with contextlib.suppress(OSError):
            worker.conn.close()
        with contextlib.suppress(ValueError):
            worker.process.close()

    def _watchdog(self) -> None:
        now = time.monotonic()
        for worker in self._workers:
            if not worker.started or worker.hard_timeout is None or worker.kill_reason:
                continue
            if now < worker.started_at + worker.hard_timeout + HARD_TIMEOUT_GRACE:
                continue
            worker.kill_reason = (
                f"hard time limit of {worker.hard_timeout:g} s exceeded and the task did not "
                f"stop within the {HARD_TIMEOUT_GRACE:g} s grace period (stuck in code that "
                f"ignores signals?): the local worker process (pid {worker.pid}) was killed"
            )
            logger.error("Local runner: %s", worker.kill_reason)
            with contextlib.suppress(ProcessLookupError):
                os.kill(worker.pid, signal.SIGKILL)

    def _publish(self, *, stopped: bool = False) -> None:
        self._state = PoolState(
            workers=self.size,
            pids=tuple(w.pid for w in self._workers),
            ready_pids=tuple(w.pid for w in self._workers if w.ready),
            running={w.pid: w.job.invocation_id for w in self._workers if w.job and w.started},
            queued=len(self._ready),
            delayed=len(self._delayed),
            stopped=stopped,
        )

    # ------------------------------------------------------------------ shutdown

    def _stop_workers(self) -> None:
        """Log the tasks not started, stop the workers; SIGKILL what is left after a grace."""
        with self._lock:
            incoming, self._incoming = self._incoming, []
        not_run = [
            *self._ready,
            *(job for _, _, job in sorted(self._delayed, key=lambda entry: entry[:2])),
            *(job for _, job in incoming),
        ]
        self._ready.clear()
        self._delayed.clear()
        for job in not_run:
            logger.warning("Local runner shutting down: task %s was not run", job.describe())
        for worker in self._workers:
            if worker.ready and worker.job is None:
                with contextlib.suppress(OSError):
                    worker.conn.send(None)  # idle: exits at once
                continue
            # Busy (or still setting Django up): SIGTERM raises WorkerStopped, which
            # the executor records as the attempt's failure before the worker exits.
            if worker.job is not None and worker.kill_reason is None:
                worker.kill_reason = (
                    "the server shut down while this task was running: the local worker "
                    f"process (pid {worker.pid}) was stopped"
                )
            with contextlib.suppress(ProcessLookupError, ValueError, AttributeError):
                worker.process.terminate()
        self._wait_for_exit(time.monotonic() + TERMINATE_GRACE)
        for worker in list(self._workers):  # stuck in C code: SIGKILL
            with contextlib.suppress(ProcessLookupError, ValueError, AttributeError):
                worker.process.kill()
            worker.process.join(1.0)
            self._reap(worker)

    def _wait_for_exit(self, deadline: float) -> None:
        while self._workers:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            ready = wait(self._waitables(), remaining)
            self._drain_wake()
            for worker in list(self._workers):
                if worker.conn in ready:
                    self._read(worker)
                if worker.process.sentinel in ready:
                    self._reap(worker)


def describe_exit(code: int | None) -> str:
    """How a process ended, from its ``exitcode``."""
    if code is None:
        return "still running"
    if code >= 0:
        return f"exited with code {code}"
    try:
        sig = signal.Signals(-code)
    except ValueError:
        return f"killed by signal {-code}"
    text = f"killed by signal {sig.name} ({signal.strsignal(sig) or sig.name})"
    if sig is signal.SIGKILL:
        text += "; killed from outside, e.g. by the out-of-memory killer"
    return text


class _Recorder:
    """Writes FAILED records for tasks whose worker died, off the dispatcher thread."""

    def __init__(self) -> None:
        self._queue: queue.Queue[_Failure | None] = queue.Queue()
        self._thread = threading.Thread(
            target=self._run, name="lambda-tasks-local-recorder", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def put(self, failure: _Failure) -> None:
        self._queue.put(failure)

    def stop(self, timeout: float = 5.0) -> None:
        self._queue.put(None)
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            failure = self._queue.get()
            if failure is None:
                return
            try:
                record_failure(failure.job, failure.cause, failure.started_wall)
            except Exception:
                logger.exception(
                    "Local runner: could not record the failure of %s", failure.job.describe()
                )


def failure_text(cause: str) -> str:
    """The recorded traceback text of a task whose worker died."""
    text = "".join(traceback.format_exception_only(WorkerDied(cause)))
    return f"{text}No outcome was recorded by the task itself.\n"


def record_failure(job: Job, cause: str, started: datetime.datetime | None = None) -> None:
    """Mark the attempt FAILED, whether or not its worker wrote the RUNNING record.

    The record may be missing (the worker died before claiming it), READY
    (enqueued through the ``django.tasks`` backend, not claimed yet) or RUNNING;
    an attempt that ended after all keeps its outcome.
    """
    from django.db import IntegrityError, close_old_connections, connections
    from django.db.models import Value
    from django.db.models.functions import Coalesce
    from django.utils import timezone

    from lambda_tasks_core import record_id
    from lambda_tasks_django.models import TaskRecord

    status = TaskRecord.TaskStatus
    unfinished = (status.READY, status.RUNNING)
    rid = record_id(job.invocation_id, job.n_retries)
    text = failure_text(cause)
    body = json.loads(job.body)
    close_old_connections()
    try:
        for _ in range(2):
            now = timezone.now()
            existing = TaskRecord.objects.filter(pk=rid).values("status", "traceback").first()
            if existing is None:
                try:
                    TaskRecord.objects.create(
                        pk=rid,
                        task_name=job.task_name,
                        kwargs=body.get("kwargs", {}),
                        args=body.get("args"),
                        n_retries=job.n_retries,
                        status=status.FAILED,
                        start_time=started or now,
                        end_time=now,
                        traceback=text,
                        invocation_id=job.invocation_id,
                        queue=job.queue,
                    )
                except IntegrityError:
                    continue  # written meanwhile: look again
                return
            if existing["status"] not in unfinished:
                return  # the attempt ended after all: keep its outcome
            note = existing["traceback"]
            TaskRecord.objects.filter(pk=rid, status=existing["status"]).update(
                status=status.FAILED,
                start_time=Coalesce("start_time", Value(started or now)),
                end_time=now,
                traceback=f"{note}\n\n{text}" if note else text,
            )
            return
    finally:
        connections.close_all()
