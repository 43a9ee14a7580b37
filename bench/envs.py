"""The virtual environments the two sides run in, and the processes started in them.

- ``bench/.venvs/reference``: ``django-lambda-tasks==0.4.0`` from the package
  index (the one thing fetched from the network), kept between runs.
- ``bench/.venvs/ours``: rebuilt on every run from the wheels of
  ``uv build --all-packages --wheel`` (no workspace, no editable install), so
  both sides are installed packages. ``--ours-env workspace`` uses the
  workspace's own venv instead (editable packages; faster to set up).
- ``bench/.venvs/size-*``: what ``pip install lambda-tasks-handler`` and
  ``pip install django-lambda-tasks`` put into a fresh venv, for the size measure.

Both sides use the same interpreter (the one running the benchmark) and the
exact versions of Django, boto3, pydantic... pinned by the workspace's lock
(``uv pip freeze`` of the workspace venv is passed as constraints). Everything
but the reference package is installed from uv's cache when it can resolve
offline (the index is asked otherwise, for the same pinned versions).
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
VENVS = BENCH / ".venvs"
CACHE = BENCH / ".cache"
REFERENCE_REQUIREMENT = "django-lambda-tasks==0.4.0"
OUR_DISTRIBUTIONS = (
    "lambda-tasks-core",
    "lambda-tasks-django",
    "lambda-tasks-handler",
    "lambda-tasks-local",
)


def interpreter() -> str:
    """The base interpreter behind the running one (venvs are built on it)."""
    base = getattr(sys, "_base_executable", None) or sys.executable
    return os.path.realpath(base)


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def uv(*args: str, quiet: bool = True) -> None:
    argv = ["uv", *args]
    result = subprocess.run(
        argv, cwd=REPO, capture_output=quiet, text=True, check=False, stdin=subprocess.DEVNULL
    )
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed:\n{result.stdout}{result.stderr}")


@functools.cache
def constraints_file() -> Path:
    """The workspace venv's exact versions (our own packages left out)."""
    result = subprocess.run(
        ["uv", "pip", "freeze", "--python", sys.executable],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    lines = [
        line
        for line in result.stdout.splitlines()
        if line
        and not line.startswith(("-e ", "#"))
        and line.split("==")[0] not in OUR_DISTRIBUTIONS
    ]
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / "constraints.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


def new_venv(path: Path) -> Path:
    if path.exists():
        shutil.rmtree(path)
    uv("venv", "--quiet", "--python", interpreter(), str(path))
    return path / "bin" / "python"


def install(python: Path, *requirements: str, constraints: Path, offline: bool = True) -> None:
    """Install into ``python``'s venv, pinned by ``constraints``.

    ``offline`` tries uv's cache first, then the index: ``uv sync --locked``
    caches the locked wheels but not the index pages an offline resolution
    reads, so on a fresh machine the cache alone cannot resolve.
    """
    args = ["pip", "install", "--quiet", "--python", str(python), "-c", str(constraints)]
    if offline:
        try:
            uv(*args, "--offline", *requirements)
        except RuntimeError:
            log(f"not resolvable from uv's cache alone; asking the index: {' '.join(requirements)}")
        else:
            return
    uv(*args, *requirements)


def install_postgres_driver(python: Path, constraints: Path) -> None:
    """psycopg for the PostgreSQL legs: the binary build when it installs, else libpq's."""
    try:
        install(python, "psycopg[binary]", constraints=constraints)
    except RuntimeError:
        install(python, "psycopg", constraints=constraints)


def build_wheels() -> list[Path]:
    dist = VENVS / "dist"
    if dist.exists():
        shutil.rmtree(dist)
    uv("build", "--all-packages", "--wheel", "--quiet", "--out-dir", str(dist))
    wheels = sorted(dist.glob("*.whl"))
    if len(wheels) != len(OUR_DISTRIBUTIONS):
        raise RuntimeError(f"expected {len(OUR_DISTRIBUTIONS)} wheels in {dist}, got {wheels}")
    return wheels


@dataclass
class Side:
    """One side of the comparison: its interpreter and its environment variables."""

    name: str
    python: Path
    description: str
    versions: dict[str, str] = field(default_factory=dict)

    @property
    def pycache(self) -> Path:
        return CACHE / "pycache" / self.name

    def env(self, **extra: str) -> dict[str, str]:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("VIRTUAL_ENV", "DJANGO_", "BENCH_", "LAMBDA_TASKS_"))
        }
        env.update(
            PYTHONPATH=str(REPO),
            PYTHONPYCACHEPREFIX=str(self.pycache),
            PYTHONDONTWRITEBYTECODE="1",
            DJANGO_SETTINGS_MODULE=f"bench.projects.{self.name}.settings",
        )
        env.update(extra)
        return env

    def run(
        self,
        module: str,
        *args: str,
        env: dict[str, str],
        timeout: float = 600,
        wrapper: Sequence[str] = (),
    ) -> tuple[dict[str, Any], float]:
        """Run ``python -m module args`` in this side's venv; its JSON result and wall time.

        ``wrapper`` goes before the interpreter (e.g. ``valgrind`` and its options).
        """
        out = CACHE / f"result-{self.name}-{os.getpid()}.json"
        out.unlink(missing_ok=True)
        argv = [*wrapper, str(self.python), "-m", module, *args]
        started = time.perf_counter()
        result = subprocess.run(
            [*argv, "--out", str(out)] if module != "bench.coldstart" else [*argv, str(out)],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
        )
        wall = time.perf_counter() - started
        if result.returncode != 0 or not out.exists():
            raise RuntimeError(
                f"{self.name}: {' '.join(argv)} exited with {result.returncode}:\n"
                f"{result.stdout[-3000:]}{result.stderr[-6000:]}"
            )
        data: dict[str, Any] = json.loads(out.read_text())
        out.unlink()
        return data, wall

    def warm_bytecode(self) -> None:
        """Write the side's bytecode cache: one run of each measure's imports, cache writes on."""
        if self.pycache.exists():
            shutil.rmtree(self.pycache)
        self.pycache.mkdir(parents=True)
        env = self.env(BENCH_DATABASE=f"sqlite:///{CACHE / 'warm.sqlite3'}")
        env.pop("PYTHONDONTWRITEBYTECODE")
        self.run("bench.coldstart", self.name, env=env)
        code = (
            "import django; django.setup(); "
            "import django.core.management, django.test.utils, boto3, sqlite3; "
            + (
                "import lambda_tasks_local"
                if self.name == "ours"
                else "import lambda_tasks.local_executor"
            )
        )
        subprocess.run(
            [str(self.python), "-c", code], cwd=REPO, env=env, check=True, capture_output=True
        )


def package_versions(python: Path, names: list[str]) -> dict[str, str]:
    code = (
        "import importlib.metadata as m, json, sys\n"
        "out = {}\n"
        "for n in sys.argv[1:]:\n"
        "    try: out[n] = m.version(n)\n"
        "    except m.PackageNotFoundError: pass\n"
        "print(json.dumps(out))\n"
    )
    result = subprocess.run(
        [str(python), "-c", code, *names], capture_output=True, text=True, check=True
    )
    versions: dict[str, str] = json.loads(result.stdout)
    return versions


COMPARED = ["django", "boto3", "botocore", "pydantic", "pydantic-core", "psycopg", "psycopg-binary"]


def reference_side() -> Side:
    """The reference venv, created once and kept while interpreter and pins are unchanged."""
    constraints = constraints_file()
    path = VENVS / "reference"
    python = path / "bin" / "python"
    stamp = path / "bench-stamp.json"
    wanted = {
        "interpreter": interpreter(),
        "requirement": REFERENCE_REQUIREMENT,
        "constraints": constraints.read_text(),
    }
    if not (python.exists() and stamp.exists() and json.loads(stamp.read_text()) == wanted):
        log(f"creating {path.relative_to(REPO)} ({REFERENCE_REQUIREMENT} from the package index)")
        python = new_venv(path)
        install(python, REFERENCE_REQUIREMENT, constraints=constraints, offline=False)
        install_postgres_driver(python, constraints)
        stamp.write_text(json.dumps(wanted))
    versions = package_versions(python, ["django-lambda-tasks", *COMPARED])
    return Side("reference", python, f"{path.relative_to(REPO)} (from PyPI)", versions)


def ours_side(mode: str) -> Side:
    if mode == "workspace":
        python = Path(sys.executable)
        description = "workspace venv (editable packages)"
    else:
        log("building our wheels (uv build --all-packages --wheel) into a fresh venv")
        wheels = build_wheels()
        path = VENVS / "ours"
        python = new_venv(path)
        constraints = constraints_file()
        install(python, *(str(wheel) for wheel in wheels), constraints=constraints)
        install_postgres_driver(python, constraints)
        description = f"{path.relative_to(REPO)} (built wheels)"
    versions = package_versions(python, [*OUR_DISTRIBUTIONS, *COMPARED])
    return Side("ours", python, description, versions)


# --------------------------------------------------------------------------- installed size


def site_packages(python: Path) -> Path:
    result = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    )
    return Path(result.stdout.strip())


def tree_size(path: Path) -> tuple[int, int]:
    """File bytes (what an unzipped Lambda package counts) and disk usage (``du``)."""
    total = disk = 0
    seen: set[int] = set()
    for root, dirs, files in os.walk(path):
        for name in [*files, *dirs]:
            entry = Path(root) / name
            if entry.is_symlink():
                continue
            stat = entry.stat()
            if name in files:
                total += stat.st_size
            if stat.st_ino not in seen:
                seen.add(stat.st_ino)
                disk += stat.st_blocks * 512
    return total, disk


def distribution_sizes(site: Path) -> dict[str, int]:
    """Bytes of each installed distribution, from its RECORD (files as installed)."""
    sizes: dict[str, int] = {}
    for info in site.glob("*.dist-info"):
        metadata = (info / "METADATA").read_text(errors="replace")
        name = next(
            line.split(":", 1)[1].strip()
            for line in metadata.splitlines()
            if line.startswith("Name:")
        )
        total = 0
        record = info / "RECORD"
        for line in record.read_text().splitlines():
            relative = line.rsplit(",", 2)[0]
            file = (site / relative).resolve()
            if file.is_file():
                total += file.stat().st_size
        sizes[name.lower().replace("_", "-")] = total
    return sizes


def installed_size(
    requirement: list[str], name: str, constraints: Path, offline: bool
) -> dict[str, Any]:
    """A fresh venv with just ``requirement``: site-packages bytes, per distribution."""
    python = new_venv(VENVS / f"size-{name}")
    install(python, *requirement, constraints=constraints, offline=offline)
    site = site_packages(python)
    total, disk = tree_size(site)
    return {"total": total, "disk": disk, "distributions": distribution_sizes(site)}
