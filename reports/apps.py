from django.apps import AppConfig


class ReportsConfig(AppConfig):
    name = "reports"

    def ready(self) -> None:
        # Register the tasks and the event consumers in every process.
        from reports import consumers, tasks  # noqa: F401
