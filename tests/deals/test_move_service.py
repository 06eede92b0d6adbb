"""move_deal and reorder_deal: the move protocol, its permissions, history and card order."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from deals.models import Deal, Event, GateEvent, StageChange
from deals.services import (
    GateBlocked,
    InvalidMove,
    NotAllowed,
    NotFound,
    Placement,
    VersionConflict,
    move_deal,
    reorder_deal,
)
from stages.models import CriterionKind
from tests.factories import CriterionFactory, DealFactory, PipelineFactory, StageFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def deal(rep, stages):
    return DealFactory(
        owner=rep,
        stage=stages["lead"],
        stage_entered_at=timezone.now() - timedelta(days=3),
    )


@pytest.fixture
def gated(stages):
    """Qualified asks for a next step and a ticked confirmation: two failures for `deal`."""
    return [
        CriterionFactory(
            stage=stages["qualified"],
            kind=CriterionKind.FIELD_REQUIRED,
            field_name="next_step",
            position=0,
        ),
        CriterionFactory(
            stage=stages["qualified"], kind=CriterionKind.CHECKLIST, label="Budget", position=1
        ),
    ]


def move(deal, stage, by, **kwargs):
    kwargs.setdefault("expected_version", deal.version)
    return move_deal(deal, stage, by=by, **kwargs)


def snapshot(deal):
    """Everything a refused move must leave untouched."""
    row = Deal.objects.values(
        "stage_id", "pipeline_id", "stage_entered_at", "position", "version", "closed_at"
    ).get(pk=deal.pk)
    return row, StageChange.objects.filter(deal=deal).count(), Event.objects.count()


def column(stage):
    return list(Deal.objects.filter(stage=stage).order_by("position", "id"))


# success


def test_move_updates_stage_pipeline_entry_time_and_version(deal, stages, rep):
    before = timezone.now()

    move(deal, stages["qualified"], rep)

    deal.refresh_from_db()
    assert deal.stage == stages["qualified"]
    assert deal.pipeline == stages["qualified"].pipeline
    assert deal.stage_entered_at >= before
    assert deal.version == 2


def test_move_appends_history_with_the_next_sequence_number(deal, stages, rep):
    move(deal, stages["qualified"], rep, source="menu")
    deal.refresh_from_db()

    move(deal, stages["demo"], rep, source="board")

    rows = list(
        StageChange.objects.filter(deal=deal)
        .order_by("seq")
        .values_list("seq", "from_stage", "to_stage", "by", "source")
    )
    assert rows == [
        (1, None, stages["lead"].pk, rep.pk, "create"),
        (2, stages["lead"].pk, stages["qualified"].pk, rep.pk, "menu"),
        (3, stages["qualified"].pk, stages["demo"].pk, rep.pk, "board"),
    ]


def test_move_history_row_is_dated_at_the_new_entry_time(deal, stages, rep):
    result = move(deal, stages["qualified"], rep)

    deal.refresh_from_db()
    assert result.change.at == deal.stage_entered_at
    assert result.change.pipeline_id == stages["qualified"].pipeline_id


def test_move_returns_the_stage_it_came_from(deal, stages, rep):
    result = move(deal, stages["qualified"], rep)

    assert result.from_stage == stages["lead"]
    assert result.deal.stage == stages["qualified"]


def test_move_publishes_deal_moved_for_follow_up_work(deal, stages, rep):
    result = move(deal, stages["qualified"], rep)

    event = Event.objects.get()
    assert event.name == "deal.moved"
    assert event.payload == {
        "deal_id": deal.pk,
        "owner_id": rep.pk,
        "from_stage_id": stages["lead"].pk,
        "to_stage_id": stages["qualified"].pk,
        "pipeline_id": stages["qualified"].pipeline_id,
        "stage_change_id": result.change.pk,
    }
    assert event.handled_at is None


def test_every_move_publishes_its_own_event(deal, stages, rep):
    move(deal, stages["qualified"], rep)
    deal.refresh_from_db()
    move(deal, stages["demo"], rep)

    assert Event.objects.filter(name="deal.moved").count() == 2


def test_event_dispatch_waits_for_commit(deal, stages, rep, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        move(deal, stages["qualified"], rep)

    assert len(callbacks) == 2  # the consumers' hand-off and the live board's announcement
    assert Event.objects.get().handled_at is None


# version conflicts


def test_stale_version_raises_conflict_and_changes_nothing(deal, stages, rep):
    stale = deal.version
    move(deal, stages["qualified"], rep)
    before = snapshot(deal)

    with pytest.raises(VersionConflict) as raised:
        move_deal(deal, stages["demo"], by=rep, expected_version=stale)

    assert snapshot(deal) == before
    assert raised.value.status == 409
    assert raised.value.deal.version == stale + 1


# the gate


def test_blocked_move_changes_nothing(deal, stages, rep, gated):
    before = snapshot(deal)

    with pytest.raises(GateBlocked) as raised:
        move(deal, stages["qualified"], rep)

    assert snapshot(deal) == before
    assert raised.value.status == 422
    assert [f.message for f in raised.value.failures] == [
        "Write the next step",
        "Confirm: Budget",
    ]


def test_blocked_move_records_one_gate_event_per_failure(deal, stages, rep, gated):
    with pytest.raises(GateBlocked):
        move(deal, stages["qualified"], rep, source="menu")

    events = list(
        GateEvent.objects.order_by("id").values_list(
            "deal", "stage", "criterion", "requirement", "outcome", "by", "source"
        )
    )
    qualified = stages["qualified"].pk
    assert events == [
        (deal.pk, qualified, gated[0].pk, "Write the next step", "blocked", rep.pk, "menu"),
        (deal.pk, qualified, gated[1].pk, "Confirm: Budget", "blocked", rep.pk, "menu"),
    ]


def test_manager_without_a_reason_is_blocked_like_anyone(deal, stages, manager, gated):
    with pytest.raises(GateBlocked):
        move(deal, stages["qualified"], manager, override_reason="   ")

    assert StageChange.objects.filter(deal=deal).count() == 1


@pytest.mark.parametrize("actor", ["manager", "admin_user"])
def test_override_with_a_reason_moves_the_deal(deal, stages, gated, actor, request):
    by = request.getfixturevalue(actor)

    result = move(deal, stages["qualified"], by, override_reason=" Verbal yes from the CFO ")

    deal.refresh_from_db()
    assert deal.stage == stages["qualified"]
    assert result.change.override_reason == "Verbal yes from the CFO"
    assert result.change.overridden == ["Write the next step", "Confirm: Budget"]


def test_override_records_gate_events_as_overridden(deal, stages, manager, gated):
    move(deal, stages["qualified"], manager, override_reason="CFO said yes")

    assert list(GateEvent.objects.order_by("id").values_list("criterion", "outcome", "by")) == [
        (gated[0].pk, "overridden", manager.pk),
        (gated[1].pk, "overridden", manager.pk),
    ]


def test_reason_is_not_recorded_when_nothing_was_overridden(deal, stages, manager):
    result = move(deal, stages["qualified"], manager, override_reason="Just in case")

    assert result.change.override_reason == ""
    assert result.change.overridden == []
    assert not GateEvent.objects.exists()


def test_rep_cannot_override(deal, stages, rep, gated):
    before = snapshot(deal)

    with pytest.raises(InvalidMove):
        move(deal, stages["qualified"], rep, override_reason="Trust me")

    assert snapshot(deal) == before


# refused moves


def test_moving_to_the_same_stage_is_refused(deal, stages, rep):
    before = snapshot(deal)

    with pytest.raises(InvalidMove):
        move(deal, stages["lead"], rep)

    assert snapshot(deal) == before


def test_moving_to_an_archived_stage_is_refused(deal, stages, rep):
    stages["qualified"].is_archived = True
    stages["qualified"].save()
    before = snapshot(deal)

    with pytest.raises(InvalidMove):
        move(deal, stages["qualified"], rep)

    assert snapshot(deal) == before


# closing and reopening


def test_moving_into_won_sets_closed_at(deal, stages, rep):
    move(deal, stages["won"], rep)

    deal.refresh_from_db()
    assert deal.closed_at == deal.stage_entered_at


def test_moving_back_to_an_open_stage_clears_closed_at(deal, stages, rep):
    move(deal, stages["won"], rep)
    deal.refresh_from_db()

    move(deal, stages["proposal"], rep)

    deal.refresh_from_db()
    assert deal.closed_at is None


def test_moving_into_won_without_an_amount_is_blocked(rep, stages):
    deal = DealFactory(owner=rep, stage=stages["proposal"], amount=None)

    with pytest.raises(GateBlocked) as raised:
        move(deal, stages["won"], rep)

    assert [f.kind for f in raised.value.failures] == ["won_amount"]
    assert GateEvent.objects.get().criterion is None


def test_moving_into_lost_requires_a_lost_reason(deal, stages, rep):
    with pytest.raises(GateBlocked) as raised:
        move(deal, stages["lost"], rep)

    assert [f.message for f in raised.value.failures] == ["Give a lost reason"]


def test_moving_into_lost_with_a_reason_closes_the_deal(deal, stages, rep):
    Deal.objects.filter(pk=deal.pk).update(lost_reason="No budget")
    deal.refresh_from_db()

    move(deal, stages["lost"], rep)

    deal.refresh_from_db()
    assert deal.stage == stages["lost"]
    assert deal.closed_at is not None


# pipelines


def test_moving_to_another_pipeline_updates_the_pipeline_and_keeps_history(deal, stages, rep):
    renewals = PipelineFactory(name="Renewals")
    due = StageFactory(pipeline=renewals, name="Renewal due", position=0)

    move(deal, due, rep)

    deal.refresh_from_db()
    assert deal.pipeline == renewals
    assert list(
        StageChange.objects.filter(deal=deal)
        .order_by("seq")
        .values_list("seq", "to_stage", "pipeline")
    ) == [(1, stages["lead"].pk, stages["lead"].pipeline_id), (2, due.pk, renewals.pk)]


# permissions


def test_rep_cannot_move_a_teammates_deal(stages, rep, teammate):
    theirs = DealFactory(owner=teammate, stage=stages["lead"])
    before = snapshot(theirs)

    with pytest.raises(NotAllowed) as raised:
        move(theirs, stages["qualified"], rep)

    assert raised.value.status == 403
    assert snapshot(theirs) == before


def test_rep_cannot_move_another_teams_deal(stages, rep, outsider):
    theirs = DealFactory(owner=outsider, stage=stages["lead"])

    with pytest.raises(NotFound):
        move(theirs, stages["qualified"], rep)


def test_manager_can_move_a_deal_of_the_team_they_manage(stages, manager, rep):
    theirs = DealFactory(owner=rep, stage=stages["lead"])

    result = move(theirs, stages["qualified"], manager)

    assert result.change.by == manager
    assert result.deal.owner == rep


def test_manager_cannot_move_another_teams_deal(stages, manager, outsider):
    theirs = DealFactory(owner=outsider, stage=stages["lead"])

    with pytest.raises(NotFound):
        move(theirs, stages["qualified"], manager)


def test_admin_can_move_any_deal(stages, admin_user, outsider):
    theirs = DealFactory(owner=outsider, stage=stages["lead"])

    move(theirs, stages["qualified"], admin_user)

    theirs.refresh_from_db()
    assert theirs.stage == stages["qualified"]


def test_inactive_owner_cannot_move_their_own_deal(deal, stages, rep):
    rep.is_active = False
    rep.save()

    with pytest.raises(NotFound):
        move(deal, stages["qualified"], rep)


def test_refused_permission_records_no_gate_event(stages, rep, teammate, gated):
    theirs = DealFactory(owner=teammate, stage=stages["lead"])

    with pytest.raises(NotAllowed):
        move(theirs, stages["qualified"], rep)

    assert not GateEvent.objects.exists()


# positions on move


@pytest.fixture
def target(rep, stages):
    """Proposal holds A, B, C at positions 1024, 2048, 3072."""
    return [
        DealFactory(owner=rep, stage=stages["proposal"], title=title, position=position)
        for title, position in [("A", 1024), ("B", 2048), ("C", 3072)]
    ]


def test_moved_card_goes_to_the_top_by_default(deal, stages, rep, target):
    move(deal, stages["proposal"], rep)

    assert column(stages["proposal"]) == [deal, *target]


def test_moved_card_lands_after_the_card_it_was_dropped_after(deal, stages, rep, target):
    a, b, c = target

    move(deal, stages["proposal"], rep, position=Placement(after_id=a.pk))

    assert column(stages["proposal"]) == [a, deal, b, c]


def test_moved_card_lands_after_the_last_card(deal, stages, rep, target):
    a, b, c = target

    move(deal, stages["proposal"], rep, position=Placement(after_id=c.pk))

    assert column(stages["proposal"]) == [a, b, c, deal]


def test_moved_card_lands_before_the_card_it_was_dropped_before(deal, stages, rep, target):
    a, b, c = target

    move(deal, stages["proposal"], rep, position=Placement(before_id=c.pk))

    assert column(stages["proposal"]) == [a, b, deal, c]


def test_moved_card_lands_before_the_first_card(deal, stages, rep, target):
    a, b, c = target

    move(deal, stages["proposal"], rep, position=Placement(before_id=a.pk))

    assert column(stages["proposal"]) == [deal, a, b, c]


def test_anchor_from_another_column_puts_the_card_on_top(deal, stages, rep, target):
    elsewhere = DealFactory(owner=rep, stage=stages["demo"])

    move(deal, stages["proposal"], rep, position=Placement(after_id=elsewhere.pk))

    assert column(stages["proposal"]) == [deal, *target]


def test_move_between_adjacent_positions_renumbers_and_keeps_every_card(deal, stages, rep):
    a = DealFactory(owner=rep, stage=stages["proposal"], title="A", position=5)
    b = DealFactory(owner=rep, stage=stages["proposal"], title="B", position=6)
    c = DealFactory(owner=rep, stage=stages["proposal"], title="C", position=7)

    move(deal, stages["proposal"], rep, position=Placement(after_id=a.pk))

    cards = column(stages["proposal"])
    assert cards == [a, deal, b, c]
    positions = [card.position for card in cards]
    assert len(set(positions)) == len(positions)


# reorder_deal


@pytest.fixture
def lane(rep, stages):
    """Demo holds A..E at positions 1024 apart."""
    return [
        DealFactory(owner=rep, stage=stages["demo"], title=title, position=1024 * (i + 1))
        for i, title in enumerate("ABCDE")
    ]


def test_reorder_moves_a_card_after_another(lane, stages, rep):
    a, b, c, d, e = lane

    reorder_deal(a, by=rep, position=Placement(after_id=c.pk), expected_version=a.version)

    assert column(stages["demo"]) == [b, c, a, d, e]


def test_reorder_moves_a_card_before_another(lane, stages, rep):
    a, b, c, d, e = lane

    reorder_deal(e, by=rep, position=Placement(before_id=b.pk), expected_version=e.version)

    assert column(stages["demo"]) == [a, e, b, c, d]


def test_reorder_leaves_version_and_history_alone(lane, stages, rep):
    a, b, *_ = lane

    reorder_deal(a, by=rep, position=Placement(after_id=b.pk), expected_version=a.version)

    a.refresh_from_db()
    assert a.version == 1
    assert StageChange.objects.filter(deal=a).count() == 1


def test_reorder_of_a_teammates_card_is_not_allowed(stages, rep, teammate):
    theirs = DealFactory(owner=teammate, stage=stages["demo"], position=10)
    mine = DealFactory(owner=rep, stage=stages["demo"], position=20)

    with pytest.raises(NotAllowed):
        reorder_deal(
            theirs, by=rep, position=Placement(after_id=mine.pk), expected_version=theirs.version
        )

    theirs.refresh_from_db()
    assert theirs.position == 10


def test_reorder_between_adjacent_positions_renumbers_and_keeps_order(stages, rep):
    a, b, c, d = (
        DealFactory(owner=rep, stage=stages["demo"], title=t, position=p)
        for t, p in [("A", 5), ("B", 6), ("C", 7), ("D", 8)]
    )

    reorder_deal(d, by=rep, position=Placement(after_id=a.pk), expected_version=d.version)

    assert column(stages["demo"]) == [a, d, b, c]


def test_repeated_reorders_never_lose_or_duplicate_cards(lane, stages, rep):
    # Cards keep being dropped right after the top card, which halves the gap each time
    # until neighbours touch and the column must be renumbered, several times over.
    order = list(lane)
    for step in range(60):
        card = order[-1] if step % 2 else order[2]
        top = order[0]
        reorder_deal(
            card, by=rep, position=Placement(after_id=top.pk), expected_version=card.version
        )
        order.remove(card)
        order.insert(1, card)

        assert column(stages["demo"]) == order

    assert sorted(d.pk for d in column(stages["demo"])) == sorted(d.pk for d in lane)


def test_interleaved_stale_reorders_keep_every_card_once(lane, stages, rep):
    # Two people reorder from the same (stale) view of the column, one after the other.
    a, b, c, d, e = lane
    reorder_deal(a, by=rep, position=Placement(after_id=d.pk), expected_version=a.version)
    reorder_deal(e, by=rep, position=Placement(before_id=a.pk), expected_version=e.version)

    assert column(stages["demo"]) == [b, c, d, e, a]


def test_reordering_next_to_a_card_that_left_the_column_puts_it_on_top(lane, stages, rep):
    a, b, c, d, e = lane
    move(b, stages["proposal"], rep)

    reorder_deal(d, by=rep, position=Placement(after_id=b.pk), expected_version=d.version)

    assert column(stages["demo"]) == [d, a, c, e]


@pytest.mark.parametrize("crowd", [0, 40])
def test_a_move_runs_the_same_few_statements_however_full_the_column_and_long_the_history(
    rep, stages, crowd, django_assert_num_queries
):
    """Lock (with the permission rule), gate criteria, update (top-of-column position
    computed inside it), history row (next seq computed inside it), outbox row, plus the
    savepoint pair of the transaction: nothing grows with the column or the history."""
    deal = DealFactory(owner=rep, stage=stages["lead"])
    DealFactory.create_batch(crowd, owner=rep, stage=stages["qualified"])
    for _ in range(crowd // 10):
        deal = move_deal(deal, stages["qualified"], by=rep, expected_version=deal.version).deal
        deal = move_deal(deal, stages["lead"], by=rep, expected_version=deal.version).deal
    deal = Deal.objects.select_related("stage", "pipeline").get(pk=deal.pk)
    with django_assert_num_queries(7):
        result = move_deal(deal, stages["qualified"], by=rep, expected_version=deal.version)
    # What the statements computed in SQL arrived as numbers, and are right.
    assert result.change.seq == StageChange.objects.filter(deal=deal).count()
    others = Deal.objects.filter(stage=stages["qualified"]).exclude(pk=deal.pk)
    assert all(result.deal.position < other.position for other in others)
    assert Deal.objects.get(pk=deal.pk).position == result.deal.position


def test_undo_keeps_the_time_the_deal_had_spent_in_its_stage(rep, deal, stages):
    from deals.services import undo_move

    entered = deal.stage_entered_at
    result = move_deal(deal, stages["qualified"], by=rep, expected_version=deal.version)
    undo_move(result.deal, by=rep, change_id=result.change.pk)
    back = Deal.objects.get(pk=deal.pk)
    assert back.stage_id == stages["lead"].pk
    assert back.stage_entered_at == entered
    assert back.days_in_stage == 3
