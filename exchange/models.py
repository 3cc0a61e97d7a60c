"""Role heartbeats: each long-running process (engine, Celery worker, FIX gateway) keeps one
row up to date, so readiness (``/readyz``, ``manage.py status``) can tell a live role from a
dead one on any machine (``exchange.heartbeat``)."""
from django.db import models


class Heartbeat(models.Model):
    role = models.CharField(max_length=32)
    instance = models.CharField(max_length=128, help_text="host:pid of the process")
    started_at = models.DateTimeField()
    beat_at = models.DateTimeField()
    details = models.JSONField(default=dict, blank=True, help_text="What the role reports (engine: its markets)")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["role", "instance"], name="heartbeat_role_instance")]

    def __str__(self):
        return f"{self.role} {self.instance} at {self.beat_at:%Y-%m-%d %H:%M:%S}"
