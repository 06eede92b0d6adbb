from __future__ import annotations

from django.urls import path

from deals.views import board as board_views
from deals.views import deal as deal_views

urlpatterns = [
    path("", board_views.board, name="board"),
    path("board/columns/<int:stage_id>/", board_views.column_more, name="column_more"),
    path("deals/<int:pk>/", deal_views.detail, name="deal_detail"),
    path("deals/<int:pk>/move/", board_views.move, name="deal_move"),
    path("deals/<int:pk>/fix-and-move/", board_views.fix_and_move, name="deal_fix_move"),
    path("deals/<int:pk>/gate/", board_views.gate_hints, name="deal_gate"),
    path("deals/<int:pk>/undo/", board_views.undo, name="deal_undo"),
]
