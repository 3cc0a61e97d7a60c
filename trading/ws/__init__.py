"""The WebSocket transport (``/ws/v1``): the consumer, its routing, and the per-process relay
that fans out the events of ``trading.outbox``."""
