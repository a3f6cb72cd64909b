from django.apps import AppConfig


class AlertsConfig(AppConfig):
    name = "alerts"
    verbose_name = "Alerts and evidence"

    def ready(self) -> None:
        from alerts import signals

        signals.connect()
