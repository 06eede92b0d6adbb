"""ImportJob, ImportMapping and ImportedRecord move here from the deals app.

State only: the tables (deals_importjob, deals_importmapping, deals_importedrecord) stay
as deals 0002 created them, with their rows; deals 0006 drops the models from deals' state.
"""

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models

import imports.models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('deals', '0005_deal_stage_age'),
        ('stages', '0001_initial'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='ImportJob',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('kind', models.CharField(choices=[('deals', 'Deals'), ('organizations', 'Organizations'), ('people', 'People'), ('activities', 'Activities')], default='deals', max_length=16)),
                        ('file', models.FileField(max_length=300, storage=imports.models.import_storage, upload_to='uploads/%Y/%m/')),
                        ('original_name', models.CharField(max_length=255)),
                        ('mapping', models.JSONField(blank=True, default=dict)),
                        ('reference', models.JSONField(blank=True, default=dict)),
                        ('override_reason', models.CharField(blank=True, help_text='Import rows that fail an entry criterion anyway', max_length=500)),
                        ('status', models.CharField(choices=[('uploaded', 'Mapping and preview'), ('queued', 'Waiting for a worker'), ('running', 'Importing'), ('done', 'Done'), ('failed', 'Stopped by an error'), ('undone', 'Undone')], default='uploaded', max_length=10)),
                        ('total_rows', models.PositiveIntegerField(default=0)),
                        ('processed_rows', models.PositiveIntegerField(default=0)),
                        ('created_count', models.PositiveIntegerField(default=0)),
                        ('updated_count', models.PositiveIntegerField(default=0)),
                        ('unchanged_count', models.PositiveIntegerField(default=0)),
                        ('skipped_count', models.PositiveIntegerField(default=0)),
                        ('failed_count', models.PositiveIntegerField(default=0)),
                        ('summary', models.JSONField(blank=True, default=dict)),
                        ('summary_file', models.FileField(blank=True, max_length=300, storage=imports.models.import_storage, upload_to='summaries/%Y/%m/')),
                        ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                        ('started_at', models.DateTimeField(blank=True, null=True)),
                        ('finished_at', models.DateTimeField(blank=True, null=True)),
                        ('undone_at', models.DateTimeField(blank=True, null=True)),
                        ('created_by', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='import_jobs', to=settings.AUTH_USER_MODEL)),
                        ('pipeline', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='stages.pipeline')),
                    ],
                    options={
                        'db_table': 'deals_importjob',
                        'ordering': ['-created_at', '-id'],
                    },
                ),
                migrations.CreateModel(
                    name='ImportedRecord',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('model', models.CharField(max_length=40)),
                        ('object_id', models.PositiveBigIntegerField()),
                        ('action', models.CharField(choices=[('created', 'Created'), ('updated', 'Updated')], max_length=10)),
                        ('before', models.JSONField(blank=True, default=dict)),
                        ('job', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='records', to='imports.importjob')),
                    ],
                    options={
                        'db_table': 'deals_importedrecord',
                    },
                ),
                migrations.CreateModel(
                    name='ImportMapping',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('name', models.CharField(max_length=100, unique=True)),
                        ('kind', models.CharField(choices=[('deals', 'Deals'), ('organizations', 'Organizations'), ('people', 'People'), ('activities', 'Activities')], default='deals', max_length=16)),
                        ('mapping', models.JSONField(default=dict)),
                        ('updated_at', models.DateTimeField(auto_now=True)),
                        ('created_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                    ],
                    options={
                        'db_table': 'deals_importmapping',
                        'ordering': ['name'],
                    },
                ),
                migrations.AddIndex(
                    model_name='importjob',
                    index=models.Index(fields=['created_by', '-created_at'], name='import_job_by_user'),
                ),
                migrations.AddIndex(
                    model_name='importedrecord',
                    index=models.Index(fields=['job', 'model', 'action'], name='imported_record_job'),
                ),
            ],
            database_operations=[],
        ),
    ]
