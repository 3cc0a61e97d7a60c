from django.apps import AppConfig


class FixConfig(AppConfig):
    name = "trading.fix"
    label = "fixgw"
    verbose_name = "FIX gateway"
    default_auto_field = "django.db.models.BigAutoField"
