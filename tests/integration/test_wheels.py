"""The built wheels alone (no workspace) install and run the example project (SPEC §1)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DISTRIBUTIONS = [
    "lambda_tasks_core",
    "lambda_tasks_django",
    "lambda_tasks_handler",
    "lambda_tasks_local",
]


def _uv() -> str:
    # `uv run` tells its children where it lives; fall back to PATH.
    uv = os.environ.get("UV") or shutil.which("uv")
    if uv is None:
        pytest.skip("uv is not available: pip install uv")
    return uv


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [_uv(), "build", "--all-packages", "--wheel", "-o", str(dist), "-q"],
        cwd=REPO,
        check=True,
        timeout=300,
    )
    built = sorted(dist.glob("*.whl"))
    assert [w.name.split("-")[0] for w in built] == DISTRIBUTIONS
    return built


def _metadata(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith("/METADATA"))
        return archive.read(name).decode().splitlines()


def test_wheels_pin_their_siblings_to_the_same_version(wheels: list[Path]) -> None:
    versions = {w.name.split("-")[0]: w.name.split("-")[1] for w in wheels}
    assert len(set(versions.values())) == 1
    version = next(iter(versions.values()))
    for wheel in wheels[1:]:
        requires = [
            line for line in _metadata(wheel) if line.startswith("Requires-Dist: lambda-tasks-")
        ]
        assert requires, wheel.name
        assert all(line.endswith(f"=={version}") for line in requires), requires


def test_wheels_declare_exactly_the_supported_python_and_django(wheels: list[Path]) -> None:
    # SPEC §1: Python 3.11-3.13, Django 5.2 LTS and 6.x as far as CI tests it (6.0, 6.1).
    for wheel in wheels:
        lines = _metadata(wheel)
        assert "Requires-Python: <3.14,>=3.11" in lines, wheel.name
        pythons = sorted(
            line.rsplit(" :: ", 1)[1]
            for line in lines
            if re.fullmatch(r"Classifier: Programming Language :: Python :: 3\.\d+", line)
        )
        assert pythons == ["3.11", "3.12", "3.13"], wheel.name
        djangos = sorted(
            line.rsplit(" :: ", 1)[1]
            for line in lines
            if re.fullmatch(r"Classifier: Framework :: Django :: [\d.]+", line)
        )
        django_requirements = [
            line for line in lines if re.match(r"Requires-Dist: django\b", line, re.I)
        ]
        if wheel.name.startswith("lambda_tasks_core-"):
            # Core never needs Django.
            assert djangos == []
            assert django_requirements == []
        else:
            assert djangos == ["5.2", "6.0", "6.1"], wheel.name
        if wheel.name.startswith("lambda_tasks_django-"):
            assert django_requirements == ["Requires-Dist: django<6.2,>=5.2"]


def test_wheels_carry_py_typed_and_migrations(wheels: list[Path]) -> None:
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as archive:
            names = archive.namelist()
        package = wheel.name.split("-")[0]
        assert f"{package}/py.typed" in names
    with zipfile.ZipFile(wheels[1]) as archive:
        assert "lambda_tasks_django/migrations/0001_initial.py" in archive.namelist()


def test_fresh_venv_with_only_the_wheels_runs_the_example_demo(
    wheels: list[Path], tmp_path: Path
) -> None:
    venv = tmp_path / "venv"
    subprocess.run([_uv(), "venv", "-q", "--python", sys.executable, str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [_uv(), "pip", "install", "-q", "--python", str(python), *map(str, wheels)],
        check=True,
        timeout=300,
    )
    project = tmp_path / "example"
    shutil.copytree(REPO / "example", project, ignore=shutil.ignore_patterns("*.sqlite3*", "*.log"))
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PYTHON", "VIRTUAL_ENV", "DJANGO_", "LAMBDA_TASKS_"))
    }
    env |= {"EXAMPLE_TASKS_MODE": "eager", "EXAMPLE_DB_PATH": str(tmp_path / "demo.sqlite3")}
    completed = subprocess.run(
        [str(python), "manage.py", "demo"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    # The packages came from the venv, not from the workspace checkout.
    located = subprocess.run(
        [str(python), "-c", "import lambda_tasks_django; print(lambda_tasks_django.__file__)"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert str(venv) in located
    # Seven @lambda_task calls, plus a django.tasks one on Django ≥ 6.0.
    finished = re.search(r"(\d+)/(\d+) tasks finished", completed.stdout)
    assert finished is not None, completed.stdout
    assert finished.group(1) == finished.group(2)
    assert int(finished.group(2)) in (7, 8)
    assert completed.stdout.count("SUCCEEDED") == int(finished.group(2)) - 1
    assert "ZeroDivisionError" in completed.stdout
