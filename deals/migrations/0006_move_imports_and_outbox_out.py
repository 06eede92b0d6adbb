"""The import models now live in the imports app, the outbox in common.

State only: their tables keep their names and rows (see imports 0001, common 0001).
"""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('deals', '0005_deal_stage_age'),
        ('imports', '0001_initial'),
        ('common', '0001_initial'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.DeleteModel(name='ImportedRecord'),
                migrations.DeleteModel(name='ImportJob'),
                migrations.DeleteModel(name='ImportMapping'),
                migrations.DeleteModel(name='OutboxMessage'),
            ],
            database_operations=[],
        ),
    ]
