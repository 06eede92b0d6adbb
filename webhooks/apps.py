from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "webhooks"
    verbose_name = "Webhooks"

    def ready(self) -> None:
        # Tasks in every process (the outbox looks them up by name); the consumer joins
        # the event log's registry.
        from webhooks import consumers, tasks  # noqa: F401
