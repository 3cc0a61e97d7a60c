"""gunicorn's settings when it serves Bourse from the checkout (``gunicorn exchange.wsgi``;
gunicorn reads ./gunicorn.conf.py by default): its own lines as JSON with a UTC timestamp,
like every role's (docs/operations.md, "Logs"). The access log comes from Bourse itself
(``bourse.access``, with the request id), so gunicorn's own is left off."""

_FORMATTER = {
    "()": "exchange.logging.JsonFormatter",
    "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
    "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
}

accesslog = None
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": _FORMATTER},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "json"}},
    "root": {"handlers": ["console"], "level": "INFO"},
    "loggers": {
        "gunicorn.error": {"level": "INFO", "handlers": ["console"], "propagate": False},
        "gunicorn.access": {"level": "INFO", "handlers": [], "propagate": False},  # bourse.access has it
    },
}
