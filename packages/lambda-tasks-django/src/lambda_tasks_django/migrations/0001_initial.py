# Same schema as django-lambda-tasks' first migration, so that a database it
# created is adopted as-is (see the package README).
from django.db import migrations, models

_OLD_STATUSES = ["RUNNING", "SUCCESS", "FAILED", "RETRYING"]


class Migration(migrations.Migration):
    initial = True

    operations = [
        migrations.CreateModel(
            name="TaskRecord",
            fields=[
                ("id", models.UUIDField(editable=False, primary_key=True, serialize=False)),
                ("task_name", models.CharField(editable=False, max_length=255)),
                ("kwargs", models.JSONField(editable=False)),
                ("n_retries", models.PositiveSmallIntegerField(editable=False)),
                (
                    "status",
                    models.CharField(
                        choices=[(s, s.title()) for s in _OLD_STATUSES],
                        editable=False,
                        max_length=10,
                    ),
                ),
                ("start_time", models.DateTimeField(editable=False, null=True)),
                ("end_time", models.DateTimeField(editable=False, null=True)),
                ("result", models.JSONField(editable=False, null=True)),
                ("traceback", models.TextField(editable=False, null=True)),
            ],
            options={
                "ordering": ["-start_time"],
                "indexes": [
                    models.Index(fields=["task_name"], name="lambda_task_task_na_f00cb7_idx"),
                    models.Index(fields=["status"], name="lambda_task_status_6901ee_idx"),
                    models.Index(fields=["-start_time"], name="lambda_task_start_t_9caffc_idx"),
                ],
                "constraints": [
                    models.CheckConstraint(
                        condition=models.Q(status__in=_OLD_STATUSES),
                        name="taskrecord_status_valid",
                    )
                ],
            },
        ),
    ]
