"""How signed requests appear in the OpenAPI document: four API-key headers, all required
together (one security requirement naming the four schemes)."""
from drf_spectacular.extensions import OpenApiAuthenticationExtension

_DESCRIPTIONS = {
    "ApiKey": ("X-API-Key", "The API key id (`bk_…`)."),
    "ApiTimestamp": ("X-API-Timestamp", "Unix epoch milliseconds; accepted within the window (default 5000 ms, "
                     "`X-API-Window` up to 60000) and at most 1000 ms ahead of the server."),
    "ApiNonce": ("X-API-Nonce", "16-64 characters of `A-Za-z0-9_-`, unique per key within the window."),
    "ApiSignature": ("X-API-Signature", "base64 HMAC-SHA256 (secret) or Ed25519 signature of "
                     "`timestamp\\nnonce\\nMETHOD\\npath\\nquery\\nsha256hex(body)`; see docs/signing.md."),
}


class ApiKeySignatureScheme(OpenApiAuthenticationExtension):
    target_class = "apikeys.authentication.ApiKeyAuthentication"
    name = list(_DESCRIPTIONS)

    def get_security_definition(self, auto_schema):
        return [
            {"type": "apiKey", "in": "header", "name": header, "description": description}
            for header, description in _DESCRIPTIONS.values()
        ]
