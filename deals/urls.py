from __future__ import annotations

from django.urls import path

from deals.views import board as board_views

urlpatterns = [
    path("", board_views.board, name="board"),
]
