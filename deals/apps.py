from django.apps import AppConfig


class DealsConfig(AppConfig):
    name = "deals"

    def ready(self) -> None:
        # Register the tasks in every process (web too): with no broker they run in-process,
        # and the outbox looks them up by name.
        from deals import consumers, tasks  # noqa: F401
