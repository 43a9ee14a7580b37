"""``LAMBDA_TASKS_*`` settings and the system checks that validate them (SPEC §11)."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import pytest
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings
from pytest_django import Settings

import lambda_tasks_django.checks
from lambda_tasks_django import lambda_task, registry
from lambda_tasks_django.settings import Mode, TasksSettings, get_settings

QUEUE_URL = "https://sqs.eu-west-1.amazonaws.com/123456789012/tasks"
FIFO_URL = "https://sqs.eu-west-1.amazonaws.com/123456789012/tasks.fifo"
CHECKS_SOURCE = Path(lambda_tasks_django.checks.__file__).parent

pytestmark = pytest.mark.django_db  # Django's own model checks query the database features


@pytest.fixture(autouse=True)
def known_tasks_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Check only the test app's and the package's tasks (other test modules define more)."""
    known = {
        name: task
        for name, task in registry.registered().items()
        if name.startswith(("tests.testapp.", "lambda_tasks_django."))
    }
    monkeypatch.setattr(registry, "_tasks", known)


def lambda_tasks_messages() -> list[checks.CheckMessage]:
    """What ``manage.py check`` reports for this app."""
    return [
        m
        for m in checks.run_checks(tags=["lambda_tasks"])
        if m.id is not None and m.id.startswith("lambda_tasks.")
    ]


def ids(messages: list[checks.CheckMessage]) -> list[str | None]:
    return [m.id for m in messages]


def test_test_settings_raise_no_check() -> None:
    assert lambda_tasks_messages() == []
    assert [m for m in checks.run_checks() if m.level >= checks.WARNING] == []


def test_checks_run_with_the_app_tag_and_unfiltered() -> None:
    with override_settings(LAMBDA_TASKS_MAX_RETRIES=-1):
        assert "lambda_tasks.E007" in ids(checks.run_checks())


# One bad value per check id of the settings; each message must name the setting.
BAD_SETTINGS: list[tuple[str, dict[str, Any], str]] = [
    ("E001", {"LAMBDA_TASKS_QUEUES": ["default"]}, "LAMBDA_TASKS_QUEUES"),
    ("E001", {"LAMBDA_TASKS_QUEUES": {"default": ""}}, "LAMBDA_TASKS_QUEUES"),
    ("E001", {"LAMBDA_TASKS_QUEUES": {"default": 3}}, "LAMBDA_TASKS_QUEUES"),
    ("E002", {"LAMBDA_TASKS_QUEUES": {"other": QUEUE_URL}}, "LAMBDA_TASKS_QUEUES"),
    ("E003", {"LAMBDA_TASKS_EAGER": "True"}, "LAMBDA_TASKS_EAGER"),
    ("E003", {"LAMBDA_TASKS_NOOP_EXECUTION": 1}, "LAMBDA_TASKS_NOOP_EXECUTION"),
    ("E003", {"LAMBDA_TASKS_OUTBOX": "yes"}, "LAMBDA_TASKS_OUTBOX"),
    ("E004", {"LAMBDA_TASKS_LOCAL_WORKERS": -1}, "LAMBDA_TASKS_LOCAL_WORKERS"),
    ("E004", {"LAMBDA_TASKS_LOCAL_WORKERS": True}, "LAMBDA_TASKS_LOCAL_WORKERS"),
    ("E004", {"LAMBDA_TASKS_LOCAL_WORKERS": 2.0}, "LAMBDA_TASKS_LOCAL_WORKERS"),
    ("E005", {"LAMBDA_TASKS_NOOP_EXECUTION": True}, "LAMBDA_TASKS_NOOP_EXECUTION"),
    ("E005", {"LAMBDA_TASKS_LOCAL_WORKERS": 3}, "LAMBDA_TASKS_LOCAL_WORKERS"),
    ("E006", {"LAMBDA_TASKS_DEFAULT_SOFT_TIMEOUT": 0}, "LAMBDA_TASKS_DEFAULT_SOFT_TIMEOUT"),
    ("E006", {"LAMBDA_TASKS_DEFAULT_HARD_TIMEOUT": 901}, "LAMBDA_TASKS_DEFAULT_HARD_TIMEOUT"),
    ("E006", {"LAMBDA_TASKS_DEFAULT_HARD_TIMEOUT": "300"}, "LAMBDA_TASKS_DEFAULT_HARD_TIMEOUT"),
    ("E006", {"LAMBDA_TASKS_DEFAULT_SOFT_TIMEOUT": True}, "LAMBDA_TASKS_DEFAULT_SOFT_TIMEOUT"),
    (
        "E006",
        {"LAMBDA_TASKS_DEFAULT_SOFT_TIMEOUT": 60, "LAMBDA_TASKS_DEFAULT_HARD_TIMEOUT": 60},
        "LAMBDA_TASKS_DEFAULT_SOFT_TIMEOUT",
    ),
    ("E007", {"LAMBDA_TASKS_MAX_RETRIES": -1}, "LAMBDA_TASKS_MAX_RETRIES"),
    ("E007", {"LAMBDA_TASKS_MAX_RETRIES": "5"}, "LAMBDA_TASKS_MAX_RETRIES"),
    ("E007", {"LAMBDA_TASKS_MAX_RETRIES": False}, "LAMBDA_TASKS_MAX_RETRIES"),
    ("E008", {"LAMBDA_TASKS_SINGLETON_CACHE": ""}, "LAMBDA_TASKS_SINGLETON_CACHE"),
    ("E008", {"LAMBDA_TASKS_SINGLETON_CACHE": None}, "LAMBDA_TASKS_SINGLETON_CACHE"),
    ("E009", {"LAMBDA_TASKS_HANDLER_TIME_MARGIN": -1}, "LAMBDA_TASKS_HANDLER_TIME_MARGIN"),
    ("E009", {"LAMBDA_TASKS_HANDLER_TIME_MARGIN": "5"}, "LAMBDA_TASKS_HANDLER_TIME_MARGIN"),
]


@pytest.mark.parametrize(("check_id", "overrides", "setting"), BAD_SETTINGS)
def test_bad_setting_fires_its_check_naming_the_setting(
    check_id: str, overrides: dict[str, Any], setting: str
) -> None:
    with override_settings(**overrides):
        messages = lambda_tasks_messages()

    fired = [m for m in messages if m.id == f"lambda_tasks.{check_id}"]
    assert len(fired) == 1, messages
    assert fired[0].level == checks.ERROR
    assert setting in fired[0].msg
    assert fired[0].obj in overrides or fired[0].obj == "LAMBDA_TASKS_EAGER"  # E005
    assert str(fired[0].obj) in fired[0].msg


@pytest.mark.parametrize(("check_id", "overrides", "setting"), BAD_SETTINGS)
def test_bad_setting_makes_get_settings_raise_naming_it(
    check_id: str, overrides: dict[str, Any], setting: str
) -> None:
    with override_settings(**overrides), pytest.raises(ImproperlyConfigured, match=setting):
        get_settings()


def test_sqs_mode_without_queues_fires_e010() -> None:
    with override_settings(LAMBDA_TASKS_EAGER=False):
        messages = lambda_tasks_messages()

    assert ids(messages) == ["lambda_tasks.E010"]
    assert messages[0].obj == "LAMBDA_TASKS_QUEUES"
    assert "LAMBDA_TASKS_QUEUES" in messages[0].msg


def test_sqs_mode_with_queues_is_fine() -> None:
    with override_settings(
        LAMBDA_TASKS_EAGER=False,
        LAMBDA_TASKS_QUEUES={"default": QUEUE_URL, "other": QUEUE_URL + "-other"},
    ):
        assert lambda_tasks_messages() == []


def test_local_mode_without_the_local_package_fires_e011(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "lambda_tasks_local", None)

    with override_settings(LAMBDA_TASKS_EAGER=False, LAMBDA_TASKS_LOCAL_WORKERS=2):
        messages = lambda_tasks_messages()

    assert ids(messages) == ["lambda_tasks.E011"]
    assert messages[0].obj == "LAMBDA_TASKS_LOCAL_WORKERS"
    assert messages[0].hint == "pip install lambda-tasks-local"


def test_task_on_a_queue_missing_from_queues_fires_e020() -> None:
    with override_settings(LAMBDA_TASKS_QUEUES={"default": QUEUE_URL}):
        found = lambda_tasks_messages()

    # tests.testapp.django_tasks has a task on that queue too (Django 6 and later).
    messages = [m for m in found if m.obj == "tests.testapp.tasks.on_other_queue"]
    assert ids(messages) == ["lambda_tasks.E020"]
    assert set(ids(found)) == {"lambda_tasks.E020"}
    assert "'other'" in messages[0].msg
    assert "LAMBDA_TASKS_QUEUES" in messages[0].msg


def test_task_whose_timeouts_conflict_with_the_defaults_fires_e021() -> None:
    # Given a task with only a hard timeout, below the default soft timeout (270 s)
    @lambda_task(hard_timeout=60)
    def short() -> None: ...

    messages = lambda_tasks_messages()

    assert ids(messages) == ["lambda_tasks.E021"]
    assert messages[0].obj == short.name
    assert "DEFAULT_SOFT_TIMEOUT" in messages[0].msg
    # And a default soft timeout below the task's hard one resolves it
    with override_settings(LAMBDA_TASKS_DEFAULT_SOFT_TIMEOUT=30):
        assert lambda_tasks_messages() == []


def test_singleton_task_without_its_cache_fires_e022() -> None:
    with override_settings(LAMBDA_TASKS_SINGLETON_CACHE="locks"):
        messages = lambda_tasks_messages()

    assert set(ids(messages)) == {"lambda_tasks.E022"}
    singletons = {name for name, task in registry.registered().items() if task.options.singleton}
    assert "tests.testapp.tasks.singleton_sleep" in singletons
    assert {m.obj for m in messages} == singletons  # each singleton task, and only those
    assert all("LAMBDA_TASKS_SINGLETON_CACHE" in m.msg for m in messages)


def test_retry_delay_on_a_fifo_queue_warns_w001() -> None:
    with override_settings(LAMBDA_TASKS_QUEUES={"default": FIFO_URL, "other": QUEUE_URL}):
        messages = lambda_tasks_messages()

    assert ids(messages) == ["lambda_tasks.W001"]
    assert messages[0].level == checks.WARNING
    assert messages[0].obj == "tests.testapp.tasks.flaky_with_retry_delay"


def test_delay_on_a_fifo_queue_fires_e023() -> None:
    fifo_other = FIFO_URL.replace("tasks.fifo", "other.fifo")
    with override_settings(LAMBDA_TASKS_QUEUES={"default": QUEUE_URL, "other": fifo_other}):
        messages = lambda_tasks_messages()

    assert ids(messages) == ["lambda_tasks.E023"]
    assert messages[0].obj == "tests.testapp.tasks.on_other_queue"  # delay=3
    assert "FIFO" in messages[0].msg


def test_the_outbox_outside_sqs_mode_warns_w002() -> None:
    with override_settings(LAMBDA_TASKS_OUTBOX=True, LAMBDA_TASKS_EAGER=True):
        messages = lambda_tasks_messages()

    assert ids(messages) == ["lambda_tasks.W002"]
    assert messages[0].obj == "LAMBDA_TASKS_OUTBOX"


def test_the_outbox_in_sqs_mode_is_clean() -> None:
    with override_settings(
        LAMBDA_TASKS_OUTBOX=True,
        LAMBDA_TASKS_EAGER=False,
        LAMBDA_TASKS_QUEUES={"default": QUEUE_URL, "other": QUEUE_URL},
    ):
        assert lambda_tasks_messages() == []


def test_every_check_id_in_the_source_is_covered_here() -> None:
    # A new check id added to the package must get its test in this file.
    in_source = set(re.findall(r'"(E\d{3}|W\d{3})"', (CHECKS_SOURCE / "settings.py").read_text()))
    in_source |= set(
        re.findall(r"lambda_tasks\.([EW]\d{3})", (CHECKS_SOURCE / "checks.py").read_text())
    )
    tested = {check_id for check_id, _, _ in BAD_SETTINGS} | {
        "E010",
        "E011",
        "E020",
        "E021",
        "E022",
        "E023",
        "W001",
        "W002",
    }
    assert in_source == tested


# --- get_settings ------------------------------------------------------------------------------


def test_defaults() -> None:
    with override_settings(LAMBDA_TASKS_EAGER=False):
        conf = get_settings()

    assert conf == TasksSettings()
    assert (conf.default_soft_timeout, conf.default_hard_timeout, conf.max_retries) == (
        270,
        300,
        2880,
    )
    assert (conf.singleton_cache, conf.handler_time_margin) == ("default", 5)
    assert conf.mode is Mode.SQS


@pytest.mark.parametrize(
    ("overrides", "mode"),
    [
        ({}, Mode.EAGER),
        ({"LAMBDA_TASKS_EAGER": False}, Mode.SQS),
        ({"LAMBDA_TASKS_EAGER": False, "LAMBDA_TASKS_LOCAL_WORKERS": 2}, Mode.LOCAL),
        ({"LAMBDA_TASKS_EAGER": False, "LAMBDA_TASKS_NOOP_EXECUTION": True}, Mode.NOOP),
    ],
)
def test_mode_follows_the_settings(overrides: dict[str, Any], mode: Mode) -> None:
    with override_settings(**overrides):
        assert get_settings().mode is mode


def test_get_settings_is_cached_and_cleared_by_override_settings() -> None:
    before = get_settings()
    assert get_settings() is before

    with override_settings(LAMBDA_TASKS_MAX_RETRIES=5):
        inside = get_settings()
        assert inside.max_retries == 5
        assert get_settings() is inside

    after = get_settings()
    assert after.max_retries == 2880
    assert after is not inside


def test_pytest_settings_fixture_also_clears_the_cache(settings: Settings) -> None:
    assert get_settings().max_retries == 2880
    settings.LAMBDA_TASKS_MAX_RETRIES = 7
    assert get_settings().max_retries == 7


def test_queue_url_of_an_unknown_queue_names_the_known_ones() -> None:
    with override_settings(LAMBDA_TASKS_QUEUES={"default": QUEUE_URL, "bulk": QUEUE_URL}):
        conf = get_settings()

    assert conf.queue_url("default") == QUEUE_URL
    with pytest.raises(ImproperlyConfigured, match=r"'nope'.*defined: bulk, default"):
        conf.queue_url("nope")
