"""API keys (HMAC-SHA256 and Ed25519), the request-signature verifier, replay guard, rate limits."""
