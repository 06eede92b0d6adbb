"""OutboxMessage moves here from the deals app.

State only: the table deals_outboxmessage stays as deals 0001 created it, with its rows;
deals 0006 drops the model from deals' state.
"""

import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('deals', '0005_deal_stage_age'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='OutboxMessage',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('task', models.CharField(max_length=100)),
                        ('payload', models.JSONField(default=dict)),
                        ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                        ('dispatched_at', models.DateTimeField(blank=True, null=True)),
                        ('attempts', models.PositiveIntegerField(default=0)),
                    ],
                    options={
                        'db_table': 'deals_outboxmessage',
                        'indexes': [models.Index(fields=['dispatched_at', 'id'], name='outbox_pending')],
                    },
                ),
            ],
            database_operations=[],
        ),
    ]
