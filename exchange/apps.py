from django.apps import AppConfig


class ExchangeConfig(AppConfig):
    name = "exchange"
    verbose_name = "Bourse"

    def ready(self):
        from . import checks  # noqa: F401 -- registers the deployment checks
