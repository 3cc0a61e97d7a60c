from django.apps import AppConfig


class TradingConfig(AppConfig):
    name = "trading"

    def ready(self):
        from . import console

        console.register()  # this app's sections of the account console page
