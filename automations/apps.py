from django.apps import AppConfig


class AutomationsConfig(AppConfig):
    name = "automations"
    verbose_name = "Automations"

    def ready(self) -> None:
        # Tasks in every process (the outbox looks them up by name); the consumer joins
        # the event log's registry.
        from automations import consumers, tasks  # noqa: F401
