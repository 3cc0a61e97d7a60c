"""Fixtures of the Python SDK tests: the live Bourse of the TypeScript SDK tests (daphne HTTP +
WebSocket and the engine on a free 127.0.0.1 port, on the test database) and traders made with
the operator commands. `make test` installs the SDK (`-e ./sdk/python[ccxt]` in
requirements-test.txt)."""
from tests.sdk.conftest import live_bourse  # noqa: F401  (the same live server fixture)
