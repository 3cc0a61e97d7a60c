"""The WebSocket transport (``/ws/v1``): consumer, routing, fan-out relay and the outbox
write side that the engine, settlement and order services publish through."""
