"""Which names a message may run: the registry and on-demand imports (SPEC §2, §8)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import tests.testapp
from lambda_tasks_core import UnknownTaskError
from lambda_tasks_django import registry
from lambda_tasks_django.registry import registered, resolve
from lambda_tasks_django.task import LambdaTask
from tests.testapp import tasks

REPO = Path(__file__).resolve().parents[2]


def test_tasks_modules_of_installed_apps_are_registered_when_django_starts() -> None:
    # Given a fresh process that only sets Django up (nothing imports a tasks module)
    script = textwrap.dedent(
        """
        import json, sys
        import django
        django.setup()
        from lambda_tasks_django.registry import registered
        print(json.dumps({
            "names": sorted(registered()),
            "imported": "tests.testapp.tasks" in sys.modules,
        }))
        """
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "PYTHONPATH": str(REPO)}

    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )

    # Then the test app's tasks and the package's built-in task are known
    found = json.loads(done.stdout.splitlines()[-1])
    assert found["imported"] is True
    assert {
        "tests.testapp.tasks.add",
        "tests.testapp.tasks.always_flaky",
        "lambda_tasks_django.tasks.cleanup_task_records",
    } <= set(found["names"])


def test_registered_task_resolves_to_the_decorated_object() -> None:
    assert resolve("tests.testapp.tasks.add") is tasks.add
    assert registered()["tests.testapp.tasks.add"] is tasks.add


def test_registered_returns_a_copy() -> None:
    copy = registered()
    copy.clear()

    assert "tests.testapp.tasks.add" in registered()


def test_task_of_an_installed_app_not_yet_imported_is_imported_on_demand(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a process where the test app's tasks module was never imported
    monkeypatch.setattr(registry, "_tasks", {})
    monkeypatch.delitem(sys.modules, "tests.testapp.tasks")
    monkeypatch.setattr(tests.testapp, "tasks", None)

    # When a message names one of its tasks
    task = resolve("tests.testapp.tasks.add")

    # Then the module was imported and the task found
    assert "tests.testapp.tasks" in sys.modules
    assert task.name == "tests.testapp.tasks.add"
    assert task is not tasks.add  # a fresh import
    assert isinstance(task, LambdaTask)
    assert task(a=1, b=2) == 3


def test_non_task_in_an_installed_app_module_is_imported_but_never_returned(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # django.contrib.auth is installed; this module of it is imported by nothing else.
    module = "django.contrib.auth.handlers.modwsgi"
    monkeypatch.delitem(sys.modules, module, raising=False)

    with pytest.raises(UnknownTaskError, match="not a registered task"):
        resolve(f"{module}.check_password")

    assert module in sys.modules


def test_missing_module_inside_an_installed_app_is_an_unknown_task() -> None:
    with pytest.raises(UnknownTaskError, match=r"importing tests\.testapp\.nowhere failed"):
        resolve("tests.testapp.nowhere.task")


@pytest.mark.parametrize(
    ("task_name", "module"),
    [
        ("this.s", "this"),
        ("antigravity.x", "antigravity"),
        ("tabnanny.check", "tabnanny"),
        ("json.tool.main", "json.tool"),
        # Shares a prefix with the installed django.contrib.admin but lies outside it
        ("django.contrib.admindocs.views.get_return_data_type", "django.contrib.admindocs.views"),
        # Not identifiers: never handed to the import system
        ("tests.testapp..add", "tests.testapp."),
        ("tests/testapp/tasks.add", "tests/testapp/tasks"),
    ],
)
def test_name_outside_the_installed_apps_imports_nothing(
    monkeypatch: pytest.MonkeyPatch, task_name: str, module: str
) -> None:
    monkeypatch.delitem(sys.modules, module, raising=False)
    before = set(sys.modules)

    with pytest.raises(UnknownTaskError, match="not a registered task"):
        resolve(task_name)

    assert module not in sys.modules
    assert set(sys.modules) == before


@pytest.mark.parametrize(
    "task_name",
    [
        "os.system",
        "builtins.print",
        "tests.testapp.tasks.plain_function",
        "tests.testapp.tasks.Group",
        "tests.testapp.tasks.add.func",
        "tests.testapp.tasks",
        "add",
        "",
    ],
)
def test_anything_but_a_registered_task_is_unknown(task_name: str) -> None:
    with pytest.raises(UnknownTaskError):
        resolve(task_name)
