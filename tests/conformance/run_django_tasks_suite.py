"""Run Django's own Tasks test suite against ``LambdaTasksBackend`` in eager mode (SPEC §10).

Usage (from the repository root, in the environment whose Django is to be checked)::

    uv run python tests/conformance/run_django_tasks_suite.py [-v 0|1|2|3]

The suite is ``tests/tasks/`` of the source distribution of the installed
Django version: downloaded once with pip into ``.cache/django-tasks-suite/``
(git-ignored), never copied into this repository. ``test_immediate_backend``,
``test_tasks`` and ``test_dummy_backend`` run with our backend standing in for
Django's immediate and dummy backends; the tests in :data:`EXCLUDED` are left
out, each for the reason given there. Exits non-zero on any failure or error,
and when an excluded test no longer exists (the list must not go stale).
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import subprocess
import sys
import tarfile
import tempfile
import unittest
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import django
from django.conf import settings

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CACHE = REPO_ROOT / ".cache" / "django-tasks-suite"
MODULES = ("tasks.test_immediate_backend", "tasks.test_tasks", "tasks.test_dummy_backend")

_NO_GET_RESULT = "asserts that get_result() is unsupported; ours reads results from TaskRecord"
_NO_DEFER = "asserts that run_after is refused; ours defers up to SQS's 900 s"
_PRIORITY = "sets a priority other than 0; ours refuses priorities (SQS has none)"
_NEVER_RUNS = "expects READY: the dummy backend never runs a task, ours (eager) runs it"
_DUMMY_API = "uses DummyBackend.results or clear(), which only the dummy backend has"

#: The only tests of the three modules that do not run, each with the reason.
EXCLUDED: dict[str, str] = (
    {
        f"tasks.test_immediate_backend.ImmediateBackendTestCase.{name}": reason
        for name, reason in [
            ("test_cannot_get_result", _NO_GET_RESULT),
            ("test_cannot_refresh_result", _NO_GET_RESULT),
            ("test_cannot_pass_run_after", _NO_DEFER),
        ]
    }
    | {
        f"tasks.test_tasks.TaskTestCase.{name}": reason
        for name, reason in [
            ("test_using_priority", _PRIORITY),
            ("test_chained_using", _PRIORITY),
            ("test_invalid_priority", _PRIORITY),
            ("test_enqueue_task", f"{_NEVER_RUNS}; {_DUMMY_API}"),
            ("test_enqueue_task_async", f"{_NEVER_RUNS}; {_DUMMY_API}"),
        ]
    }
    | {
        f"tasks.test_dummy_backend.{name}": reason
        for name, reason in [
            ("DummyBackendTestCase.test_enqueue_task", f"{_NEVER_RUNS}; {_DUMMY_API}"),
            ("DummyBackendTestCase.test_enqueue_task_async", f"{_NEVER_RUNS}; {_DUMMY_API}"),
            ("DummyBackendTestCase.test_takes_context", _NEVER_RUNS),
            (
                "DummyBackendTestCase.test_enqueue_logs",
                "expects the enqueue line alone, as the dummy backend never runs a task; "
                "ours logs Django's RUNNING and SUCCESSFUL lines too (checked by "
                "test_immediate_backend)",
            ),
            ("DummyBackendTestCase.test_refresh_result", _DUMMY_API),
            ("DummyBackendTestCase.test_refresh_result_async", _DUMMY_API),
            ("DummyBackendTestCase.test_clear", _DUMMY_API),
            (
                "DummyBackendTransactionTestCase.test_doesnt_wait_until_transaction_commit_by_default",
                f"{_DUMMY_API} (test_immediate_backend's test of the same name runs)",
            ),
        ]
    }
)


def fetch_suite(version: str, cache: Path) -> Path:
    """The directory holding Django ``version``'s ``tests/tasks`` as package ``tasks``."""
    suite = cache / version
    if (suite / "tasks" / "__init__.py").exists():
        return suite
    sdist = cache / f"django-{version}.tar.gz"
    if not sdist.exists():
        cache.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                *_pip(),
                "download",
                "--quiet",
                "--no-deps",
                "--no-binary=:all:",
                # pip may run on another interpreter than this one (see _pip).
                f"--python-version={sys.version_info.major}.{sys.version_info.minor}",
                f"--dest={cache}",
                f"django=={version}",
            ],
            check=True,
        )
    prefix = f"django-{version}/tests/tasks/"
    with tempfile.TemporaryDirectory(dir=cache) as scratch, tarfile.open(sdist) as archive:
        members = [m for m in archive.getmembers() if m.name.startswith(prefix) and m.isfile()]
        if not members:
            raise SystemExit(f"{sdist} holds no {prefix}")
        archive.extractall(scratch, members=members, filter="data")
        staged = Path(scratch) / "suite"
        staged.mkdir()
        (Path(scratch) / prefix).rename(staged / "tasks")
        # Renamed into place whole, so an interrupted run leaves no half suite behind.
        staged.rename(suite)
    return suite


def _pip() -> list[str]:
    # uv's environments come without pip; the interpreter uv was installed with has it.
    if importlib.util.find_spec("pip") is not None:
        return [sys.executable, "-m", "pip"]
    for name in ("pip3", "pip"):
        found = shutil.which(name)
        if found:
            return [found]
    raise SystemExit("pip is needed to download Django's source distribution")


def configure(scratch: Path) -> None:
    settings.configure(
        SECRET_KEY="django-tasks-conformance",
        USE_TZ=True,
        INSTALLED_APPS=["lambda_tasks_django"],
        # A file rather than SQLite's shared in-memory database: its locking
        # is the one applications get.
        DATABASES={
            "default": {
                "ENGINE": "django.db.backends.sqlite3",
                "NAME": str(scratch / "db.sqlite3"),
                "TEST": {"NAME": str(scratch / "test.sqlite3")},
            }
        },
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
        LAMBDA_TASKS_EAGER=True,
        TASKS={"default": {"BACKEND": "lambda_tasks_django.backends.LambdaTasksBackend"}},
        LOGGING={
            "version": 1,
            "disable_existing_loggers": False,
            # The executor's own lines; the suite reads those of django.tasks.
            "loggers": {"lambda_tasks": {"handlers": [], "level": "CRITICAL"}},
        },
    )
    django.setup()


def substitute_backends() -> None:
    """Make Django's backend classes, as the suite names them, mean ours.

    The suite selects backends by dotted path in ``override_settings(TASKS=...)``
    and checks ``isinstance`` against the classes it imports: replacing the
    module attributes covers both, without editing a line of the suite.
    """
    from django.tasks.backends import dummy, immediate

    from lambda_tasks_django.backends import LambdaTasksBackend
    from lambda_tasks_django.models import TaskRecord

    class DummyStandIn(LambdaTasksBackend):
        """Ours, plus the ``clear()`` that the dummy tests' ``setUp`` calls."""

        def clear(self) -> None:
            TaskRecord.objects.all().delete()

    immediate.ImmediateBackend = LambdaTasksBackend  # type: ignore[misc,assignment]
    dummy.DummyBackend = DummyStandIn  # type: ignore[misc,assignment]


def _tests(suite: unittest.TestSuite) -> Iterator[unittest.TestCase]:
    for test in suite:
        if isinstance(test, unittest.TestSuite):
            yield from _tests(test)
        else:
            yield test


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-v", "--verbosity", type=int, default=2, choices=range(4))
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="download cache")
    options = parser.parse_args()

    version = django.get_version()
    print(f"=== Django {version} tests/tasks against LambdaTasksBackend (eager)")
    sys.path.insert(0, str(fetch_suite(version, options.cache)))
    with tempfile.TemporaryDirectory(prefix="django-tasks-suite-") as scratch:
        configure(Path(scratch))
        substitute_backends()
        return run(options.verbosity)


def run(verbosity: int) -> int:
    from django.test import SimpleTestCase, TransactionTestCase
    from django.test.runner import DiscoverRunner

    class Runner(DiscoverRunner):
        result: unittest.TextTestResult | None = None
        selected = 0

        def build_suite(self, *args: Any, **kwargs: Any) -> unittest.TestSuite:
            tests = list(_tests(super().build_suite(*args, **kwargs)))
            found = {test.id() for test in tests}
            stale = sorted(set(EXCLUDED) - found)
            if stale:
                raise SystemExit(f"excluded tests that do not exist: {', '.join(stale)}")
            kept = [test for test in tests if test.id() not in EXCLUDED]
            for test in kept:
                if isinstance(test, SimpleTestCase) and not isinstance(test, TransactionTestCase):
                    # Ours keeps results in the database, which SimpleTestCase forbids.
                    type(test).databases = {"default"}
            self.selected = len(kept)
            return self.test_suite(kept)

        def run_suite(self, suite: unittest.TestSuite, **kwargs: Any) -> unittest.TextTestResult:
            self.result = super().run_suite(suite, **kwargs)
            return self.result

    print(f"=== left out ({len(EXCLUDED)}):")
    for test_id, reason in EXCLUDED.items():
        print(f"  {test_id.removeprefix('tasks.')}\n      {reason}")
    runner = Runner(verbosity=verbosity, interactive=False)
    failures = runner.run_tests(list(MODULES))
    result = runner.result
    ran = result.testsRun if result is not None else 0
    print(
        f"=== Django {django.get_version()}: {ran} run, {failures} failed or erred, "
        f"{len(EXCLUDED)} left out"
    )
    if ran == 0 or ran != runner.selected:
        print("=== not every selected test ran")
        return 1
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
