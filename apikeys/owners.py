"""The owner's *Active* flag reaches its keys: turning ``User.is_active`` off (how an operator
freezes a customer in the console) refuses every key of every account the user owns on all
transports, and closes their open WebSocket and FIX sessions within a second; turning it back
on lets them work again.

The verifier reads ``is_active`` on every request, so REST needs nothing more; this hook
publishes the key-state event (``owner_deactivated`` / ``owner_reactivated``) that live
sessions and key caches act on. It fires on ``save()`` (the console, ``manage.py shell``,
services); a bulk ``QuerySet.update()`` sends no signal, and then the live sessions' periodic
re-check (``BOURSE_KEY_RECHECK_S``) finds the change.
"""
from __future__ import annotations

import functools

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models.signals import post_save, pre_save

from . import events, keycache
from .models import ApiKey

_PREVIOUS = "_bourse_was_active"


def _remember(sender, instance, raw=False, **kwargs):
    if raw or instance.pk is None:
        return
    previous = sender._default_manager.filter(pk=instance.pk).values_list("is_active", flat=True).first()
    setattr(instance, _PREVIOUS, previous)


def _announce(sender, instance, created=False, raw=False, **kwargs):
    previous = instance.__dict__.pop(_PREVIOUS, None)
    if raw or created or previous is None or previous == instance.is_active:
        return
    key_ids = list(ApiKey.objects.filter(account__owner=instance).values_list("key_id", flat=True))
    for key_id in key_ids:  # this process's cached copies go now and at commit, like the services'
        keycache.forget(key_id)
        transaction.on_commit(functools.partial(keycache.forget, key_id))
    events.publish("owner_reactivated" if instance.is_active else "owner_deactivated", key_ids)


def connect() -> None:
    User = get_user_model()
    pre_save.connect(_remember, sender=User, dispatch_uid="apikeys.owners.remember")
    post_save.connect(_announce, sender=User, dispatch_uid="apikeys.owners.announce")
