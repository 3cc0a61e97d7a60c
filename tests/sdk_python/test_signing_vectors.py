"""The SDK's signers against every test vector of docs/signing.md, read from that file."""
import hashlib
import re
from pathlib import Path

import pytest
from bourse import Ed25519Signer, HmacSigner, auth_headers, signed_string

DOC = (Path(__file__).resolve().parents[2] / "docs" / "signing.md").read_text()


def _shared_inputs() -> dict:
    block = DOC.split("Shared inputs:", 1)[1].split("```", 2)[1]
    out = {}
    for line in block.strip().splitlines():
        name, value = re.split(r"\s{2,}", line.strip(), maxsplit=1)
        out[name] = value.split()[0]
    return out


def _vectors() -> list[dict]:
    vectors = []
    for block in re.findall(r"```vector\n(.*?)```", DOC, re.S):
        fields = {}
        for line in block.splitlines():
            name, _, value = line.partition(" ")
            fields[name] = value.strip()
        vectors.append(fields)
    return vectors


SHARED = _shared_inputs()
VECTORS = _vectors()


def test_the_document_has_the_vectors():
    assert len(VECTORS) >= 6 and {v["scheme"] for v in VECTORS} == {"hmac", "ed25519"}
    assert "hmac secret" in SHARED and "ed25519 private key" in SHARED


@pytest.mark.parametrize("vector", VECTORS, ids=[f"vector{i + 1}-{v['scheme']}" for i, v in enumerate(VECTORS)])
def test_vector(vector):
    body = vector["body"].encode()
    assert hashlib.sha256(body).hexdigest() == vector["body_sha256"]
    signer = (HmacSigner(SHARED["hmac secret"]) if vector["scheme"] == "hmac"
              else Ed25519Signer(SHARED["ed25519 private key"]))
    message = signed_string(vector["timestamp"], vector["nonce"], vector["method"], vector["path"], vector["query"], body)
    assert message.endswith(vector["body_sha256"]) and message.count("\n") == 5
    assert signer.sign(message) == vector["signature"]
    headers = auth_headers(signer, "bk_test", vector["method"], vector["path"], vector["query"], body,
                           timestamp_ms=int(vector["timestamp"]), nonce=vector["nonce"])
    assert headers["X-API-Signature"] == vector["signature"]
    assert (headers["X-API-Timestamp"], headers["X-API-Nonce"]) == (vector["timestamp"], vector["nonce"])


def test_ed25519_public_key_is_the_documented_one():
    assert Ed25519Signer(SHARED["ed25519 private key"]).public_key_b64() == SHARED["ed25519 public key"]


def test_a_bad_ed25519_key_is_refused_clearly():
    with pytest.raises(ValueError, match="32"):
        Ed25519Signer("AAEC")
