"""The event outbox: what the domain publishes, and how the transports read it.

Every transaction that changes what a client can see (the engine's batches, settlement,
order submissions and cancels) writes its events here, in that same transaction
(``services.outbox_write``): private events are sequenced per account and channel, public
ones carry the market's sequence. After commit the writer announces the new rows
(``signal``); the transports read them back through ``selectors`` — the WebSocket relay to
fan them out, the FIX gateway to build execution reports. The domain imports this package,
never a transport.
"""
