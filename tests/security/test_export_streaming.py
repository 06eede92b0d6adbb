"""The board's CSV export streams under ASGI too: sent batch by batch as it is read from
the database, never built whole first (common/exports.py: streaming_csv).

Under ASGI (the compose web server) Django consumes a synchronous generator whole
before the first byte; at 1M deals the export was held in memory until the proxy's
30 s timeout cut the download short. These requests go through Django's ASGI handler.
"""

from __future__ import annotations

import csv
import io

import pytest
from asgiref.sync import async_to_sync
from django.test import AsyncClient
from django.urls import reverse

from common import exports
from tests.factories import DealFactory

pytestmark = pytest.mark.django_db

DEALS = 250


@pytest.fixture
def deals(rep, stages, monkeypatch):
    monkeypatch.setattr(exports, "STREAM_BATCH_LINES", 40)
    return DealFactory.create_batch(DEALS, owner=rep, stage=stages["lead"])


def test_under_asgi_the_export_is_sent_batch_by_batch_and_complete(rep, deals):
    async def download() -> tuple[bool, list[bytes]]:
        client = AsyncClient()
        await client.aforce_login(rep)
        response = await client.get(reverse("board_export"))
        assert response.status_code == 200
        return response.is_async, [chunk async for chunk in response.streaming_content]

    is_async, chunks = async_to_sync(download)()

    assert is_async, "a synchronous stream is read whole before the first byte under ASGI"
    assert len(chunks) >= DEALS // 40
    rows = list(csv.reader(io.StringIO(b"".join(chunks).decode("utf-8-sig"))))
    assert len(rows) == DEALS + 1
    assert {row[0] for row in rows[1:]} == {str(deal.pk) for deal in deals}
    print(f"\nASGI export: {DEALS} deals in {len(chunks)} batches")


def test_under_wsgi_the_export_streams_its_generator(client_for, rep, deals):
    response = client_for(rep).get(reverse("board_export"))

    assert response.streaming and not response.is_async
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode("utf-8-sig"))))
    assert len(rows) == DEALS + 1


def test_an_outsider_exports_nothing_of_it_under_asgi(outsider, deals):
    async def download() -> bytes:
        client = AsyncClient()
        await client.aforce_login(outsider)
        response = await client.get(reverse("board_export"))
        return b"".join([chunk async for chunk in response.streaming_content])

    rows = list(csv.reader(io.StringIO(async_to_sync(download)().decode("utf-8-sig"))))
    assert rows[1:] == []
