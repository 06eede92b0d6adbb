from django.apps import AppConfig


class ImportsConfig(AppConfig):
    name = "imports"

    def ready(self) -> None:
        # Registered in every process (web too): with no broker the task runs in-process.
        from imports import tasks  # noqa: F401
