"""The FIX 4.4 order-entry gateway: an asyncio TCP acceptor (``gateway``), its codec
(``codec``), session store and logon check (``store``, ``logon``), and the mapping between
FIX application messages and the order services (``application``, ``reports``).

It is a transport like REST and WebSocket: it authenticates with the shared verifier's
primitives, calls ``trading.services`` and tails the outbox the engine writes; it never
touches the order models directly for writes. The Django app label is ``fixgw``.
"""
