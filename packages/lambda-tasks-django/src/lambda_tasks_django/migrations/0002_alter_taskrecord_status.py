# The reference package renamed two statuses; same name and effect here.
from typing import Any

from django.db import migrations, models

_NEW_STATUSES = ["RUNNING", "SUCCEEDED", "FAILED", "RETRIED"]
_RENAMES = {"SUCCESS": "SUCCEEDED", "RETRYING": "RETRIED"}


def _rename(apps: Any, schema_editor: Any, *, reverse: bool = False) -> None:
    record = apps.get_model("lambda_tasks", "TaskRecord")
    for old, new in _RENAMES.items():
        source, target = (new, old) if reverse else (old, new)
        record.objects.filter(status=source).update(status=target)


def _forward(apps: Any, schema_editor: Any) -> None:
    _rename(apps, schema_editor)


def _backward(apps: Any, schema_editor: Any) -> None:
    _rename(apps, schema_editor, reverse=True)


class Migration(migrations.Migration):
    dependencies = [("lambda_tasks", "0001_initial")]

    operations = [
        migrations.RemoveConstraint(model_name="taskrecord", name="taskrecord_status_valid"),
        migrations.RunPython(_forward, _backward),
        migrations.AlterField(
            model_name="taskrecord",
            name="status",
            field=models.CharField(
                choices=[(s, s.title()) for s in _NEW_STATUSES], editable=False, max_length=10
            ),
        ),
        migrations.AddConstraint(
            model_name="taskrecord",
            constraint=models.CheckConstraint(
                condition=models.Q(status__in=_NEW_STATUSES), name="taskrecord_status_valid"
            ),
        ),
    ]
