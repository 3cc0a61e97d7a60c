"""The interpreter's cyclic garbage collector in a long-running role.

Python frees most objects by reference counting the moment they are no longer used; only
objects caught in reference cycles wait for the cyclic collector, which runs every few hundred
allocations and, in its full collections, walks every object the process holds. A role that
has loaded Django, its apps and their libraries holds ~150,000 such objects that live as long
as the process, and every full collection walked all of them again: with the request path's
cycles (below) they cost a REST process 10-12 % of its CPU under load (bench/order_path.md).

Two remedies, both needed:

- the request path makes no cycles: the handler's disconnect watch (``exchange.httppool``) and
  DRF's view, request and response (``exchange.apiview.BourseApi``) are untied as a request
  ends, so its objects go by reference counting, not by the collector;
- ``settle()`` once a role has loaded what it serves with: one collection, then every object
  alive moves to the permanent generation (``gc.freeze``), which no later collection walks.
  Loaded before the work starts, they would stay for the process's life anyway; the collector
  still runs for what comes later (and ``gc.unfreeze`` is never needed: the frozen objects are
  the program itself, not its data). For a role that forks (a prefork Celery pool), it also
  keeps the children from writing to — and so copying — the parent's pages when the collector
  visits them.
"""
from __future__ import annotations

import gc


def settle() -> int:
    """Collect once, then exempt every object alive now from later collections. Returns how
    many objects are frozen."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
