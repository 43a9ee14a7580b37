"""The example project's django.tasks views, end to end (enqueue, run, read back)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import django
import pytest

REPO = Path(__file__).resolve().parents[2]

_SCRIPT = """
import json, django
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
from django.test import Client
client = Client(HTTP_HOST="localhost")
enqueued = client.get("/word-count/", {"text": "one two three"}).json()
fetched = client.get(f"/word-count/{enqueued['result_id']}/").json()
missing = client.get("/word-count/no-such-id/")
print(json.dumps({"enqueued": enqueued, "fetched": fetched, "missing": missing.status_code}))
"""


@pytest.mark.skipif(django.VERSION < (6, 0), reason="django.tasks needs Django 6.0 or later")
def test_example_enqueues_a_django_task_in_a_view_and_reads_its_result(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "LAMBDA_TASKS_"))}
    env |= {
        "DJANGO_SETTINGS_MODULE": "example_project.settings",
        "EXAMPLE_TASKS_MODE": "eager",
        "EXAMPLE_DB_PATH": str(tmp_path / "example.sqlite3"),
        "EXAMPLE_LOG_PATH": str(tmp_path / "example.log"),
    }
    completed = subprocess.run(
        [sys.executable, "-c", _SCRIPT],
        cwd=REPO / "example",
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode == 0, completed.stderr
    outcome = json.loads(completed.stdout.strip().splitlines()[-1])
    # Eager mode: enqueue() hands back the finished result, as Django's ImmediateBackend does.
    assert outcome["enqueued"]["status"] == "SUCCESSFUL"
    assert outcome["fetched"] == {
        "result_id": outcome["enqueued"]["result_id"],
        "status": "SUCCESSFUL",
        "errors": [],
        "return_value": 3,
    }
    assert outcome["missing"] == 404


def _readme_commands() -> list[str]:
    """The shell commands of the root README's ```bash blocks."""
    text = (REPO / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.DOTALL)
    return [line for block in blocks for line in block.splitlines() if line.strip()]


def test_the_readme_gives_exactly_the_demo_and_the_test_command() -> None:
    assert _readme_commands() == [
        "pip install uv && uv run python example/manage.py demo",
        "pip install uv && uv run pytest",
    ]


def test_the_readme_demo_runs_on_local_workers_and_sqlite(tmp_path: Path) -> None:
    # The README's command, minus `pip install uv && uv run`: this interpreter is that venv.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "LAMBDA_TASKS_"))}
    env.pop("EXAMPLE_TASKS_MODE", None)  # its default: local workers
    env |= {
        "EXAMPLE_DB_PATH": str(tmp_path / "example.sqlite3"),
        "EXAMPLE_LOG_PATH": str(tmp_path / "example.log"),
    }
    completed = subprocess.run(
        [sys.executable, "example/manage.py", "demo"],
        cwd=REPO,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=180,
    )

    assert completed.returncode == 0, completed.stderr
    out = completed.stdout
    assert "mode: local" in out
    rows = dict(re.findall(r"^(\S.*?)\s{2,}(SUCCEEDED|FAILED)\s", out, flags=re.MULTILINE))
    assert rows["add(a=2, b=3)"] == "SUCCEEDED"
    assert rows["divide(a=1, b=0)"] == "FAILED"
    assert rows["flaky(fail_times=2)"] == "SUCCEEDED"
    assert rows["slow(seconds=1.5)"] == "FAILED"
    assert "Traceback" not in completed.stderr
    assert "leaked semaphore" not in completed.stderr
