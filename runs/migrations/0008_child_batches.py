"""ChildBatch and ChildItem: the state of a node that runs several child runs (a map's items, a loop's
iterations)."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("runs", "0007_run_trigger"),
    ]

    operations = [
        migrations.CreateModel(
            name="ChildBatch",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("workflow_id", models.PositiveBigIntegerField()),
                ("workflow_version", models.PositiveIntegerField()),
                ("total", models.PositiveIntegerField()),
                ("concurrency", models.PositiveSmallIntegerField(default=1)),
                ("continue_on_error", models.BooleanField(default=False)),
                ("done", models.PositiveIntegerField(default=0)),
                ("failed", models.PositiveIntegerField(default=0)),
                ("progress_at", models.PositiveIntegerField(default=0)),
                (
                    "node_run",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE, related_name="child_batch", to="runs.noderun"
                    ),
                ),
            ],
        ),
        migrations.CreateModel(
            name="ChildItem",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("index", models.PositiveIntegerField()),
                (
                    "status",
                    models.CharField(
                        choices=[
                            ("pending", "Pending"),
                            ("running", "Running"),
                            ("succeeded", "Succeeded"),
                            ("failed", "Failed"),
                            ("cancelled", "Cancelled"),
                        ],
                        default="pending",
                        max_length=16,
                    ),
                ),
                ("input", models.JSONField(default=dict)),
                ("output", models.JSONField(blank=True, null=True)),
                ("error", models.TextField(blank=True, default="")),
                (
                    "child_run",
                    models.OneToOneField(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="child_item",
                        to="runs.run",
                    ),
                ),
                (
                    "node_run",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="child_items",
                        to="runs.noderun",
                    ),
                ),
            ],
            options={
                "ordering": ["node_run", "index"],
                "indexes": [models.Index(fields=["node_run", "status"], name="childitem_node_status_idx")],
                "constraints": [models.UniqueConstraint(fields=("node_run", "index"), name="childitem_unique_index")],
            },
        ),
    ]
