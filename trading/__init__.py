"""Trading: markets, orders, fills, the engine runner, settlement and the transports."""
