"""The ASGI application production serves (gunicorn with uvicorn workers).

Long-lived streams do not hold a worker thread each under ASGI; ordinary views still run
as synchronous Django code. Django's handler, except that the live board's event streams
(deals.views.live.EventStream) are written by their event loop's feed rather than each
iterated by a task of its own: with hundreds of boards open that is most of the cost of
telling them about a change.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

import django
from django.core.handlers.asgi import ASGIHandler

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pipeline_crm.settings")
django.setup(set_prefix=False)

from deals.views.live import EventStream, Send  # noqa: E402  (needs the apps loaded)


async def _no_body() -> AsyncIterator[bytes]:
    return
    yield


class Handler(ASGIHandler):
    async def send_response(self, response: Any, send: Send) -> None:
        if not isinstance(response, EventStream):
            await super().send_response(response, send)
            return

        async def headers_only(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                await send(message)

        # Django's own headers and cookies; the body is the stream's to write.
        response.streaming_content = _no_body()
        await super().send_response(response, headers_only)
        await response.serve(send)


application = Handler()
