"""Admin, management commands, the built-in task and migrations (SPEC §4, §12)."""

from __future__ import annotations

import datetime
import io
import uuid
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from pytest_django import DjangoCaptureOnCommitCallbacks

from lambda_tasks_core import new_invocation_id, record_id
from lambda_tasks_django.models import TaskRecord
from lambda_tasks_django.tasks import cleanup_task_records

Status = TaskRecord.TaskStatus
CHANGELIST = reverse("admin:lambda_tasks_taskrecord_changelist")


def make_record(**fields: Any) -> TaskRecord:
    """A finished record of ``tests.testapp.tasks.add``; override any column."""
    invocation_id = fields.pop("invocation_id", new_invocation_id())
    n_retries = fields.pop("n_retries", 0)
    start = fields.pop("start_time", timezone.now())
    values: dict[str, Any] = {
        "task_name": "tests.testapp.tasks.add",
        "kwargs": {"a": 1, "b": 2},
        "status": Status.SUCCEEDED,
        "end_time": start and start + datetime.timedelta(seconds=1, milliseconds=500),
        "result": 3,
        "queue": "default",
        **fields,
    }
    return TaskRecord.objects.create(
        pk=record_id(invocation_id, n_retries),
        invocation_id=invocation_id,
        n_retries=n_retries,
        start_time=start,
        **values,
    )


def listed(response: Any) -> list[TaskRecord]:
    return list(response.context["cl"].result_list)


def offered_actions(response: Any) -> set[str]:
    """Actions in the changelist's dropdown (no form at all when none is allowed)."""
    form = response.context["action_form"]
    return set() if form is None else {value for value, _ in form.fields["action"].choices}


# --- admin -------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_changelist_renders_records_with_their_duration(admin_client: Client) -> None:
    record = make_record()

    response = admin_client.get(CHANGELIST)

    assert response.status_code == 200
    assert listed(response) == [record]
    page = response.content.decode()
    assert "tests.testapp.tasks.add" in page
    assert "0:00:01.500000" in page  # the duration column


@pytest.mark.django_db
def test_change_page_renders_read_only(admin_client: Client) -> None:
    record = make_record(traceback="Traceback: boom")
    url = reverse("admin:lambda_tasks_taskrecord_change", args=[record.pk])

    response = admin_client.get(url)

    assert response.status_code == 200
    assert "Traceback: boom" in response.content.decode()
    admin_client.post(url, {"task_name": "os.system", "status": Status.FAILED})
    record.refresh_from_db()
    assert (record.task_name, record.status) == ("tests.testapp.tasks.add", Status.SUCCEEDED)


@pytest.mark.django_db
def test_status_and_task_filters_narrow_the_list(admin_client: Client) -> None:
    ok = make_record()
    failed = make_record(status=Status.FAILED, result=None)
    other = make_record(task_name="tests.testapp.tasks.noop", result=None)

    assert listed(admin_client.get(CHANGELIST, {"status__exact": Status.FAILED})) == [failed]
    by_task = listed(admin_client.get(CHANGELIST, {"task_name": "tests.testapp.tasks.noop"}))
    assert by_task == [other]
    assert ok not in by_task


@pytest.mark.django_db
def test_search_finds_by_invocation_id_and_task_name(admin_client: Client) -> None:
    wanted = make_record()
    make_record(task_name="tests.testapp.tasks.noop", result=None)

    assert listed(admin_client.get(CHANGELIST, {"q": str(wanted.invocation_id)})) == [wanted]
    assert listed(admin_client.get(CHANGELIST, {"q": "noop"})) != [wanted]
    assert len(listed(admin_client.get(CHANGELIST, {"q": "tests.testapp"}))) == 2


@pytest.mark.django_db
def test_date_hierarchy_filters_by_start_time(admin_client: Client) -> None:
    old = make_record(start_time=datetime.datetime(2020, 3, 1, tzinfo=datetime.UTC))
    make_record()

    response = admin_client.get(CHANGELIST, {"start_time__year": 2020})

    assert listed(response) == [old]


@pytest.mark.django_db
def test_records_cannot_be_added(admin_client: Client) -> None:
    response = admin_client.get(reverse("admin:lambda_tasks_taskrecord_add"))

    assert response.status_code == 403
    assert admin_client.get(CHANGELIST).context["has_add_permission"] is False


@pytest.mark.django_db
def test_replay_enqueues_a_new_invocation_per_selected_record(
    admin_client: Client, django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks
) -> None:
    # Given a failed record and the last retry of another invocation
    first = make_record(kwargs={"a": 1, "b": 1}, status=Status.FAILED, result=None)
    second = make_record(kwargs={"a": 5}, n_retries=3, status=Status.FAILED, result=None)
    untouched = make_record(kwargs={"a": 100})

    # When both are replayed from the admin (eager mode runs them)
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            CHANGELIST,
            {"action": "replay", "_selected_action": [str(first.pk), str(second.pk)]},
            follow=True,
        )

    # Then each ran again as a new first attempt under a new invocation id
    assert response.status_code == 200
    assert "Replayed 2 task(s)." in response.content.decode()
    new = TaskRecord.objects.exclude(pk__in=[first.pk, second.pk, untouched.pk])
    assert sorted((r.result, r.n_retries, r.status) for r in new) == [
        (2, 0, Status.SUCCEEDED),
        (5, 0, Status.SUCCEEDED),
    ]
    assert not {r.invocation_id for r in new} & {first.invocation_id, second.invocation_id}


@pytest.mark.django_db
def test_replay_skips_records_that_cannot_run_and_says_why(
    admin_client: Client, django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks
) -> None:
    bad_name = make_record(task_name="os.system", kwargs={"command": "true"})
    bad_kwargs = make_record(kwargs={"a": "one"})
    good = make_record()

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = admin_client.post(
            CHANGELIST,
            {
                "action": "replay",
                "_selected_action": [str(bad_name.pk), str(bad_kwargs.pk), str(good.pk)],
            },
            follow=True,
        )

    page = response.content.decode()
    assert f"Not replayed os.system ({bad_name.pk})" in page
    assert f"Not replayed tests.testapp.tasks.add ({bad_kwargs.pk})" in page
    assert "Replayed 1 task(s)." in page
    assert callbacks != []
    replayed = TaskRecord.objects.exclude(pk__in=[bad_name.pk, bad_kwargs.pk, good.pk])
    assert [(r.task_name, r.result) for r in replayed] == [("tests.testapp.tasks.add", 3)]


@pytest.mark.django_db
def test_replay_is_not_offered_without_change_permission(
    client: Client, django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks
) -> None:
    # Given a staff user who may only view task records
    viewer = User.objects.create_user("viewer", password="pw", is_staff=True)
    viewer.user_permissions.add(
        Permission.objects.get(codename="view_taskrecord", content_type__app_label="lambda_tasks")
    )
    client.force_login(viewer)
    record = make_record()

    # Then the list renders without the action, and posting it replays nothing
    response = client.get(CHANGELIST)
    assert response.status_code == 200
    assert listed(response) == [record]
    assert "replay" not in offered_actions(response)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        client.post(CHANGELIST, {"action": "replay", "_selected_action": [str(record.pk)]})
    assert callbacks == []
    assert TaskRecord.objects.count() == 1


@pytest.mark.django_db
def test_replay_is_offered_with_change_permission(client: Client) -> None:
    editor = User.objects.create_user("editor", password="pw", is_staff=True)
    editor.user_permissions.add(
        Permission.objects.get(codename="change_taskrecord", content_type__app_label="lambda_tasks")
    )
    client.force_login(editor)
    make_record()

    response = client.get(CHANGELIST)

    assert "replay" in offered_actions(response)


# --- cleanup and status ------------------------------------------------------------------------


def _aged(days: float, **fields: Any) -> TaskRecord:
    return make_record(start_time=timezone.now() - datetime.timedelta(days=days), **fields)


@pytest.mark.django_db
def test_cleanup_command_deletes_records_older_than_the_retention_and_prints_the_count() -> None:
    old = [_aged(10), _aged(6)]
    kept = [_aged(4), _aged(0), make_record(start_time=None, end_time=None)]
    out = io.StringIO()

    call_command("lambda_tasks_cleanup", "--retention-days", "5", stdout=out)

    assert out.getvalue().strip() == "Deleted 2 task record(s) older than 5 day(s)."
    assert set(TaskRecord.objects.all()) == set(kept)
    assert not TaskRecord.objects.filter(pk__in=[r.pk for r in old]).exists()


@pytest.mark.django_db
def test_cleanup_command_keeps_a_week_by_default() -> None:
    _aged(8)
    _aged(6)
    out = io.StringIO()

    call_command("lambda_tasks_cleanup", stdout=out)

    assert "Deleted 1 task record(s) older than 7 day(s)." in out.getvalue()
    assert TaskRecord.objects.count() == 1


@pytest.mark.django_db
def test_cleanup_task_returns_how_many_it_deleted() -> None:
    _aged(3)
    _aged(1)

    assert cleanup_task_records(retention_days=2) == 1
    assert cleanup_task_records(retention_days=2) == 0
    assert cleanup_task_records(retention_days=0) == 1
    with pytest.raises(ValueError, match="retention_days"):
        cleanup_task_records(retention_days=-1)


@pytest.mark.django_db
def test_cleanup_task_runs_as_a_task_and_keeps_its_own_record(
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
) -> None:
    _aged(30)

    with django_capture_on_commit_callbacks(execute=True):
        invocation_id = cleanup_task_records.execute_on_commit(retention_days=7)

    record = TaskRecord.objects.get()
    assert (record.invocation_id, record.status, record.result) == (
        invocation_id,
        Status.SUCCEEDED,
        1,
    )


@pytest.mark.django_db
def test_status_command_prints_counts_per_task_and_status() -> None:
    for _ in range(3):
        make_record()
    make_record(status=Status.FAILED)
    make_record(task_name="tests.testapp.tasks.noop", status=Status.RETRIED)
    make_record(task_name="tests.testapp.tasks.noop", status=Status.RUNNING, end_time=None)
    out = io.StringIO()

    call_command("lambda_tasks_status", stdout=out)

    lines = out.getvalue().splitlines()
    assert lines[0].split() == ["task", "READY", "RUNNING", "SUCCEEDED", "FAILED", "RETRIED"]
    rows = {line.split()[0]: [int(n) for n in line.split()[1:]] for line in lines[2:]}
    assert rows == {
        "tests.testapp.tasks.add": [0, 0, 3, 1, 0],
        "tests.testapp.tasks.noop": [0, 1, 0, 0, 1],
    }


@pytest.mark.django_db
def test_status_command_without_records() -> None:
    out = io.StringIO()

    call_command("lambda_tasks_status", stdout=out)

    assert out.getvalue().strip() == "No task records."


# --- migrations --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_models_and_migrations_agree() -> None:
    out = io.StringIO()

    # Raises SystemExit(1) when a migration is missing.
    call_command("makemigrations", "lambda_tasks", "--check", "--dry-run", stdout=out)

    assert "No changes detected" in out.getvalue()


def _insert_raw(**values: Any) -> None:
    """INSERT a row with plain SQL, as the reference package's code would have."""
    fields = {f.column: f for f in TaskRecord._meta.concrete_fields}
    columns = list(values)
    params = [fields[c].get_db_prep_save(values[c], connection) for c in columns]
    quoted = ", ".join(connection.ops.quote_name(c) for c in columns)
    marks = ", ".join(["%s"] * len(columns))
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO lambda_tasks_taskrecord ({quoted}) VALUES ({marks})",
            params,
        )


def _migrate(target: str) -> None:
    executor = MigrationExecutor(connection)
    executor.migrate([("lambda_tasks", target)])


@pytest.mark.django_db(transaction=True)
def test_database_of_the_reference_package_upgrades_and_keeps_its_rows() -> None:
    latest = MigrationExecutor(connection).loader.graph.leaf_nodes("lambda_tasks")[0][1]
    started = datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
    rows = {name: uuid.uuid4() for name in ("success", "retrying", "failed")}
    try:
        # Given a table created by the reference's 0001 (statuses SUCCESS / RETRYING)
        _migrate("0001_initial")
        for status, key in (("SUCCESS", "success"), ("RETRYING", "retrying")):
            _insert_raw(
                id=rows[key],
                task_name="app.tasks.old",
                kwargs={"x": 1},
                n_retries=0,
                status=status,
                start_time=started,
                end_time=started + datetime.timedelta(seconds=2),
                result=[1, "two"],
                traceback=None,
            )
        # and a row written after the reference's 0002 (FAILED, its current schema)
        _migrate("0002_alter_taskrecord_status")
        _insert_raw(
            id=rows["failed"],
            task_name="app.tasks.old",
            kwargs={},
            n_retries=4,
            status="FAILED",
            start_time=started,
            end_time=None,
            result=None,
            traceback="Traceback ...",
        )

        # When our later migrations run
        _migrate(latest)

        # Then every row reads through the model, renamed statuses included
        records = {r.pk: r for r in TaskRecord.objects.all()}
        success = records[rows["success"]]
        assert (success.status, success.kwargs, success.result) == (
            Status.SUCCEEDED,
            {"x": 1},
            [1, "two"],
        )
        assert success.duration == datetime.timedelta(seconds=2)
        assert (success.invocation_id, success.queue) == (None, None)
        assert records[rows["retrying"]].status == Status.RETRIED
        failed = records[rows["failed"]]
        assert (failed.status, failed.n_retries, failed.traceback) == (
            Status.FAILED,
            4,
            "Traceback ...",
        )
        assert failed.duration is None
    finally:
        _migrate(latest)
