"""The ASGI application production serves (gunicorn with uvicorn workers).

Long-lived streams do not hold a worker thread each under ASGI; ordinary views still run
as synchronous Django code.
"""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "pipeline_crm.settings")
application = get_asgi_application()
