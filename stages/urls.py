"""Configuration screens, mounted at /settings/ (admins only; see `stages.views`)."""

from __future__ import annotations

from django.urls import path

from stages import views

app_name = "stages"

urlpatterns = [
    path("", views.pipelines, name="pipelines"),
    path("pipelines/new/", views.create_pipeline, name="create_pipeline"),
    path("pipelines/reorder/", views.reorder_pipelines, name="reorder_pipelines"),
    path("pipelines/<int:pipeline_id>/", views.pipeline, name="pipeline"),
    path("pipelines/<int:pipeline_id>/rename/", views.rename_pipeline, name="rename_pipeline"),
    path("pipelines/<int:pipeline_id>/move/", views.move_pipeline, name="move_pipeline"),
    path("pipelines/<int:pipeline_id>/archive/", views.archive_pipeline, name="archive_pipeline"),
    path("pipelines/<int:pipeline_id>/restore/", views.restore_pipeline, name="restore_pipeline"),
    path("pipelines/<int:pipeline_id>/stages/new/", views.new_stage, name="new_stage"),
    path(
        "pipelines/<int:pipeline_id>/stages/reorder/", views.reorder_stages, name="reorder_stages"
    ),
    path("stages/<int:stage_id>/", views.stage, name="stage"),
    path("stages/<int:stage_id>/move/", views.move_stage, name="move_stage"),
    path("stages/<int:stage_id>/archive/", views.archive_stage, name="archive_stage"),
    path("stages/<int:stage_id>/restore/", views.restore_stage, name="restore_stage"),
    path("stages/<int:stage_id>/delete/", views.delete_stage, name="delete_stage"),
    path("stages/<int:stage_id>/criteria/new/", views.new_criterion, name="new_criterion"),
    path("criteria/<int:criterion_id>/", views.criterion, name="criterion"),
    path("criteria/<int:criterion_id>/move/", views.move_criterion, name="move_criterion"),
    path("criteria/<int:criterion_id>/remove/", views.remove_criterion, name="remove_criterion"),
    path("audit/", views.audit, name="audit"),
]
