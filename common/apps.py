from django.apps import AppConfig


class CommonConfig(AppConfig):
    """Shared plumbing (SQL helpers, CSV export rule, rate limiting, outbox, middleware).

    An app only because the outbox has a table; it imports no other app of the project.
    """

    name = "common"
