"""Deal.last_activity_at and Deal.next_activity, filled from the activities already there.

The backfill is one UPDATE with the recount `deals.activities.activity_times` makes,
written against the historical models (a migration must not follow later code).
"""

import django.db.models.deletion
from django.db import migrations, models
from django.db.models import Max, OuterRef, Subquery
from django.db.models.functions import Coalesce, Greatest


def backfill(apps, schema_editor):
    Activity = apps.get_model("deals", "Activity")
    Deal = apps.get_model("deals", "Deal")
    latest = (
        Activity.objects.filter(deal=OuterRef("pk"))
        .values("deal")
        .annotate(at=Max(Greatest("created_at", Coalesce("done_at", "created_at"))))
        .values("at")
    )
    following = (
        Activity.objects.filter(deal=OuterRef("pk"), done=False)
        .order_by("due_at", "id")
        .values("pk")[:1]
    )
    Deal.objects.update(last_activity_at=Subquery(latest), next_activity=Subquery(following))


class Migration(migrations.Migration):

    dependencies = [
        ('deals', '0011_activity_open_due'),
    ]

    operations = [
        migrations.AddField(
            model_name='deal',
            name='last_activity_at',
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
        migrations.AddField(
            model_name='deal',
            name='next_activity',
            field=models.ForeignKey(blank=True, db_constraint=False, db_index=False, editable=False, null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to='deals.activity'),
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop, elidable=True),
    ]
