"""Webhook deliveries, verified with the Standard Webhooks reference library."""

from __future__ import annotations

import json
import socket
import uuid
from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.utils import timezone
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from common.errors import BadInput, NotAllowed
from deals.models import Notification
from tests.factories import DealFactory
from tests.webhooks.receiver import Receiver
from webhooks import http, services
from webhooks.models import Delivery, DeliveryStatus, Endpoint

pytestmark = pytest.mark.django_db


@pytest.fixture
def loopback(settings):
    settings.WEBHOOKS_ALLOW_LOOPBACK = True


@pytest.fixture
def receiver(loopback):
    started = Receiver().start()
    yield started
    started.stop()


def event(deal, name="deal.moved", **payload):
    return SimpleNamespace(
        pk=uuid.uuid4(),
        name=name,
        at=timezone.now(),
        deal_id=deal.pk if deal else None,
        payload={"deal_id": deal.pk if deal else None, **payload},
        source="api",
    )


def send_all():
    """Run every due delivery, as the worker and the periodic retry would."""
    for pk in services.due_deliveries():
        services.deliver(pk)


def pass_backoff():
    Delivery.objects.filter(status=DeliveryStatus.PENDING).update(next_attempt_at=timezone.now())


def test_delivery_is_signed_per_standard_webhooks(manager, rep, stages, receiver):
    new = services.create_endpoint(by=manager, url=receiver.url, events=["deal.*"])
    deal = DealFactory(owner=rep, stage=stages["lead"], title="Acme")
    moved = event(deal, to_stage_id=stages["qualified"].pk)
    services.fan_out([moved])
    send_all()

    (call,) = receiver.calls
    message = Webhook(new.secret).verify(call.body, call.headers)
    assert call.headers["webhook-id"] == str(moved.pk)
    assert message["type"] == "deal.moved"
    assert message["data"]["deal"]["title"] == "Acme"
    assert message["data"]["to_stage_id"] == stages["qualified"].pk
    with pytest.raises(WebhookVerificationError):
        Webhook(services.signing.new_secret()).verify(call.body, call.headers)


def test_receiver_failing_n_times_gets_each_event_once_after_retries(
    manager, rep, stages, loopback
):
    failing = Receiver(fail_first=3).start()
    try:
        new = services.create_endpoint(by=manager, url=failing.url, events=["deal.moved"])
        deal = DealFactory(owner=rep, stage=stages["lead"])
        events = [event(deal), event(deal)]
        services.fan_out(events)
        for _ in range(6):
            send_all()
            pass_backoff()
    finally:
        failing.stop()

    ids = [c.headers["webhook-id"] for c in failing.calls]
    accepted = [c.headers["webhook-id"] for c in failing.accepted()]
    assert sorted(accepted) == sorted(str(e.pk) for e in events)  # each event once
    assert set(ids) == {str(e.pk) for e in events}  # retries reuse the stable id
    for call in failing.calls:
        Webhook(new.secret).verify(call.body, call.headers)
    assert set(Delivery.objects.values_list("status", flat=True)) == {DeliveryStatus.SUCCEEDED}


def test_failed_attempt_is_logged_and_backed_off(manager, rep, stages, loopback):
    failing = Receiver(fail_first=1).start()
    try:
        services.create_endpoint(by=manager, url=failing.url, events=["deal.moved"])
        services.fan_out([event(DealFactory(owner=rep, stage=stages["lead"]))])
        send_all()
        send_all()  # not due yet: nothing more is sent
    finally:
        failing.stop()
    delivery = Delivery.objects.get()
    (attempt,) = delivery.log.all()
    assert (attempt.ok, attempt.status_code, attempt.response_excerpt) == (False, 500, "nope")
    assert len(failing.calls) == 1
    assert delivery.next_attempt_at > timezone.now() + timedelta(seconds=3)


def test_backoff_lasts_more_than_a_day():
    assert sum(services.BACKOFF, timedelta()) >= timedelta(hours=24)


def test_gives_up_after_the_last_backoff(manager, rep, stages, loopback):
    failing = Receiver(fail_first=100).start()
    try:
        services.create_endpoint(by=manager, url=failing.url, events=["deal.moved"])
        services.fan_out([event(DealFactory(owner=rep, stage=stages["lead"]))])
        for _ in range(len(services.BACKOFF) + 3):
            send_all()
            pass_backoff()
    finally:
        failing.stop()
    assert Delivery.objects.get().status == DeliveryStatus.FAILED
    assert len(failing.calls) == len(services.BACKOFF) + 1


def test_endpoint_is_disabled_after_sustained_failure_and_owner_notified(
    manager, rep, stages, loopback, settings
):
    settings.WEBHOOKS_DISABLE_AFTER_FAILURES = 3
    settings.WEBHOOKS_DISABLE_AFTER_HOURS = 0
    failing = Receiver(fail_first=100).start()
    try:
        new = services.create_endpoint(by=manager, url=failing.url, events=["deal.moved"])
        deal = DealFactory(owner=rep, stage=stages["lead"])
        services.fan_out([event(deal), event(deal), event(deal)])
        send_all()
    finally:
        failing.stop()
    endpoint = Endpoint.objects.get(pk=new.endpoint.pk)
    assert not endpoint.is_active
    assert Notification.objects.filter(user=manager, kind="webhook_disabled").count() == 1


def test_payload_only_for_deals_the_subscriber_may_see(manager, outsider, stages, receiver):
    services.create_endpoint(by=manager, url=receiver.url, events=["deal.*"])
    services.fan_out([event(DealFactory(owner=outsider, stage=stages["lead"]))])
    send_all()
    assert receiver.calls == []
    assert Delivery.objects.get().status == DeliveryStatus.SKIPPED


def test_visibility_is_checked_at_send_time(manager, rep, outsider, stages, receiver):
    services.create_endpoint(by=manager, url=receiver.url, events=["deal.*"])
    deal = DealFactory(owner=rep, stage=stages["lead"])
    services.fan_out([event(deal)])
    deal.owner = outsider  # handed to another team before the delivery went out
    deal.save()
    send_all()
    assert receiver.calls == []


def test_rotation_signs_with_both_secrets_during_the_overlap(manager, rep, stages, receiver):
    old = services.create_endpoint(by=manager, url=receiver.url, events=["deal.*"])
    new = services.rotate_secret(old.endpoint.pk, by=manager)
    services.fan_out([event(DealFactory(owner=rep, stage=stages["lead"]))])
    send_all()
    (call,) = receiver.calls
    Webhook(old.secret).verify(call.body, call.headers)
    Webhook(new.secret).verify(call.body, call.headers)
    assert len(call.headers["webhook-signature"].split(" ")) == 2


def test_manual_redelivery_sends_again_with_the_same_id(manager, rep, stages, receiver):
    services.create_endpoint(by=manager, url=receiver.url, events=["deal.*"])
    services.fan_out([event(DealFactory(owner=rep, stage=stages["lead"]))])
    send_all()
    delivery = Delivery.objects.get()
    services.redeliver(delivery.pk, by=manager)
    send_all()
    assert [c.headers["webhook-id"] for c in receiver.calls] == [delivery.event_id] * 2
    assert delivery.log.count() == 2


def test_delivery_claimed_by_a_killed_worker_is_sent_after_its_lease(
    manager, rep, stages, receiver
):
    services.create_endpoint(by=manager, url=receiver.url, events=["deal.*"])
    services.fan_out([event(DealFactory(owner=rep, stage=stages["lead"]))])
    delivery = Delivery.objects.get()
    assert services._claim(delivery.pk, timezone.now()) is not None  # then the worker dies
    send_all()
    assert receiver.calls == []  # leased: nobody sends it twice at once
    Delivery.objects.update(next_attempt_at=timezone.now())  # the lease ran out
    send_all()
    assert len(receiver.calls) == 1


def test_unsubscribed_event_types_are_not_delivered(manager, rep, stages, receiver):
    services.create_endpoint(by=manager, url=receiver.url, events=["deal.won"])
    services.fan_out([event(DealFactory(owner=rep, stage=stages["lead"]), "deal.moved")])
    assert not Delivery.objects.exists()


def test_reps_cannot_subscribe(rep, receiver):
    with pytest.raises(NotAllowed):
        services.create_endpoint(by=rep, url=receiver.url, events=["deal.*"])


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/hook",
        "https://10.0.0.8/hook",
        "https://192.168.1.1/hook",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/hook",
        "https://[fd00::1]/hook",
        "https://0.0.0.0/hook",
        "https://localhost/hook",
        "http://example.com/hook",
        "https://user:pw@example.com/hook",
        "ftp://example.com/hook",
    ],
)
def test_private_and_non_https_addresses_are_refused_by_default(admin_user, url):
    with pytest.raises(BadInput):
        services.create_endpoint(by=admin_user, url=url, events=["deal.*"])
    assert not Endpoint.objects.exists()


def test_dns_answer_that_turns_private_is_refused_at_send_time(manager, rep, stages, monkeypatch):
    monkeypatch.setattr(
        socket, "getaddrinfo", lambda *a, **k: [(2, 1, 6, "", ("93.184.216.34", 443))]
    )
    new = services.create_endpoint(
        by=manager, url="https://hooks.example.com/x", events=["deal.*"]
    )
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: [(2, 1, 6, "", ("10.1.2.3", 443))])
    services.fan_out([event(DealFactory(owner=rep, stage=stages["lead"]))])
    send_all()
    (attempt,) = Delivery.objects.get(endpoint=new.endpoint).log.all()
    assert attempt.status_code is None and "private" in attempt.error


def test_connects_to_the_checked_address_with_the_host_name_kept(receiver, monkeypatch):
    port = receiver.server.server_address[1]
    monkeypatch.setattr(
        socket, "getaddrinfo", lambda *a, **k: [(2, 1, 6, "", ("127.0.0.1", port))]
    )
    outcome = http.post(f"http://hooks.example.test:{port}/hook", b"{}", {})
    assert outcome.status_code == 200
    assert receiver.calls[0].headers["host"] == f"hooks.example.test:{port}"


def test_redirect_to_another_host_is_not_followed(loopback):
    target = Receiver().start()
    bouncer = Receiver(redirect_to=f"http://localhost:{0}/hook").start()
    try:
        bouncer.redirect_to = f"http://localhost:{target.server.server_address[1]}/hook"
        outcome = http.post(bouncer.url, b"{}", {})
    finally:
        bouncer.stop()
        target.stop()
    assert outcome.status_code is None and "another host" in outcome.error
    assert target.calls == []


def test_redirect_on_the_same_host_is_followed_and_rechecked(receiver):
    receiver.redirect_to = "/moved"
    outcome = http.post(receiver.url, b"{}", {})
    assert outcome.status_code == 200
    assert [c.path for c in receiver.calls] == ["/hook", "/moved"]


def test_loopback_is_refused_when_the_test_setting_is_off(receiver, settings):
    settings.WEBHOOKS_ALLOW_LOOPBACK = False
    outcome = http.post(receiver.url, b"{}", {})
    assert outcome.status_code is None
    assert receiver.calls == []


def test_body_is_the_event_json(manager, rep, stages, receiver):
    services.create_endpoint(by=manager, url=receiver.url, events=["deal.*"])
    services.fan_out([event(DealFactory(owner=rep, stage=stages["lead"]), "deal.won")])
    send_all()
    body = json.loads(receiver.calls[0].body)
    assert set(body) == {"type", "timestamp", "data"}


def test_deal_deleted_reaches_subscribers_who_could_see_the_deal(
    manager, other_manager, rep, stages, receiver
):
    """The deal is gone when the delivery is sent: who may hear of it is decided by the
    owner named in the event, not by a row that no longer exists."""
    from deals import services as deal_services
    from deals.models import Event

    mine = services.create_endpoint(by=manager, url=receiver.url, events=["deal.deleted"])
    services.create_endpoint(by=other_manager, url=receiver.url, events=["deal.*"])
    deal = DealFactory(owner=rep, stage=stages["lead"], title="Acme")
    deal_services.delete_deal(deal, by=manager, expected_version=deal.version)
    services.fan_out(Event.objects.filter(name="deal.deleted"))
    send_all()

    (call,) = receiver.calls
    message = Webhook(mine.secret).verify(call.body, call.headers)
    assert message["type"] == "deal.deleted"
    assert message["data"]["deal_id"] == deal.pk
    assert "deal" not in message["data"] and "Acme" not in call.body.decode()
    statuses = dict(Delivery.objects.values_list("endpoint__owner__username", "status"))
    assert statuses == {
        manager.username: DeliveryStatus.SUCCEEDED,
        other_manager.username: DeliveryStatus.SKIPPED,
    }


def test_deal_deleted_is_in_the_event_catalogue(manager, receiver):
    services.create_endpoint(by=manager, url=receiver.url, events=["deal.deleted"])
    assert Endpoint.objects.get().events == ["deal.deleted"]
