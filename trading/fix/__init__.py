"""The FIX 4.4 order-entry gateway: the TCP acceptor (``server``), one session state machine
per connection (``session``), its codec (``codec``), session store and logon check
(``store``, ``logon``), the execution-report reader over the outbox (``reader``), and the
mapping between FIX application messages and the order services (``application``,
``reports``).

It is a transport like REST and WebSocket: it authenticates through the shared verifier,
reads through selectors, writes through ``trading.services``, and imports no model but its
own session store's. The Django app label is ``fixgw``.
"""
