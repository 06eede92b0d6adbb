from __future__ import annotations

from django.urls import path

from deals.views import board as board_views
from deals.views import deal as deal_views
from deals.views import export as export_views
from deals.views import live as live_views
from deals.views import notifications as notification_views
from deals.views import search as search_views
from deals.views import snooze as snooze_views

# Card templates derive a deal's action URLs from its page URL (deals/<pk>/…) to save
# hundreds of reverse() calls per board: keep these under that prefix.
urlpatterns = [
    path("", board_views.board, name="board"),
    path("board/columns/<int:stage_id>/", board_views.column_more, name="column_more"),
    path("board/bulk-move/", board_views.bulk, name="bulk_move"),
    path("deals/new/", deal_views.new_deal, name="deal_new"),
    path("deals/<int:pk>/", deal_views.detail, name="deal_detail"),
    path("deals/<int:pk>/edit/", deal_views.edit, name="deal_edit"),
    path("deals/<int:pk>/next/", deal_views.next_stage, name="deal_next"),
    path("deals/<int:pk>/close/<str:outcome>/", deal_views.close, name="deal_close"),
    path("deals/<int:pk>/reassign/", deal_views.reassign, name="deal_reassign"),
    path("deals/<int:pk>/delete/", deal_views.delete, name="deal_delete"),
    path("deals/<int:pk>/activities/", deal_views.activity_create, name="activity_create"),
    path("deals/<int:pk>/move/", board_views.move, name="deal_move"),
    path("deals/<int:pk>/fix-and-move/", board_views.fix_and_move, name="deal_fix_move"),
    path("deals/<int:pk>/gate/", board_views.gate_hints, name="deal_gate"),
    path("deals/<int:pk>/undo/", board_views.undo, name="deal_undo"),
    path("activities/", deal_views.my_activities, name="my_activities"),
    path(
        "activities/<int:activity_id>/complete/",
        deal_views.activity_complete,
        name="activity_complete",
    ),
    path("activities/<int:activity_id>/edit/", deal_views.activity_update, name="activity_update"),
    path(
        "activities/<int:activity_id>/delete/", deal_views.activity_delete, name="activity_delete"
    ),
    # Stalled deals and notifications (background jobs).
    path("deals/<int:pk>/snooze/", snooze_views.snooze, name="deal_snooze"),
    path("deals/<int:pk>/unsnooze/", snooze_views.unsnooze, name="deal_unsnooze"),
    path("notifications/", notification_views.notification_list, name="notifications"),
    path(
        "notifications/read-all/", notification_views.mark_all_read, name="notifications_read_all"
    ),
    path("notifications/<int:pk>/read/", notification_views.mark_read, name="notification_read"),
    path(
        "notifications/<int:pk>/open/",
        notification_views.open_notification,
        name="notification_open",
    ),
    # Global search (header box and results page).
    path("search/", search_views.search, name="search"),
    # The live board: its event stream, and what a page fetches when told of a change.
    path("live/stream/", live_views.stream, name="live_stream"),
    path("live/heads/", live_views.heads, name="live_heads"),
    path("live/versions/", live_views.versions, name="live_versions"),
    path("deals/<int:pk>/card/", live_views.card, name="live_card"),
    path("live/presence/", live_views.presence, name="live_presence"),
    path("deals/<int:pk>/editing/", live_views.editing, name="live_editing"),
    # The board's CSV export.
    path("board/export.csv", export_views.board_export, name="board_export"),
]
