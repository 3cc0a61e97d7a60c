"""The test vectors published in docs/signing.md, checked against the signing code and the
server's verifier (so the docs and the server cannot disagree)."""
import re
from pathlib import Path

import pytest

from apikeys import crypto, verifier
from apikeys.models import ApiKey
from apikeys.signing import body_sha256, sign_ed25519, sign_hmac, signed_string
from tests.factories import AccountFactory

DOC = Path(__file__).resolve().parents[2] / "docs" / "signing.md"
HMAC_SECRET = "Rk9SLVRFU1RTLU9OTFktbm90LWEtcmVhbC1zZWNyZXQtMDAx"
ED25519_SEED = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
ED25519_PUBLIC = "A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg="


def published_vectors() -> list[dict]:
    vectors = []
    for block in re.findall(r"```vector\n(.*?)```", DOC.read_text(), re.S):
        fields = {}
        for line in block.splitlines():
            name, _, value = line.partition(" ")
            fields[name] = value.strip()
        vectors.append(fields)
    return vectors


VECTORS = published_vectors()


def test_the_doc_publishes_hmac_and_ed25519_vectors_with_and_without_query_and_body():
    assert len(VECTORS) >= 3
    kinds = {(v["scheme"], bool(v["query"]), bool(v["body"])) for v in VECTORS}
    assert {s for s, _, _ in kinds} == {"hmac", "ed25519"}
    assert any(q for _, q, _ in kinds) and any(b for _, _, b in kinds) and ("hmac", False, False) in kinds
    text = DOC.read_text()
    assert HMAC_SECRET in text and ED25519_SEED in text and ED25519_PUBLIC in text


@pytest.mark.parametrize("vector", VECTORS, ids=[f"{v['scheme']}-{v['method']}-{v['nonce']}" for v in VECTORS])
def test_signing_code_reproduces_the_vector(vector):
    assert body_sha256(vector["body"].encode()) == vector["body_sha256"]
    message = signed_string(vector["timestamp"], vector["nonce"], vector["method"], vector["path"],
                            vector["query"], vector["body_sha256"])
    if vector["scheme"] == "hmac":
        assert sign_hmac(HMAC_SECRET, message) == vector["signature"]
    else:
        assert sign_ed25519(ED25519_SEED, message) == vector["signature"]


@pytest.mark.django_db
@pytest.mark.parametrize("vector", VECTORS, ids=[f"{v['scheme']}-{v['method']}-{v['nonce']}" for v in VECTORS])
def test_server_verifier_accepts_the_vector(vector, monkeypatch):
    # given a key holding the published credentials, and the server clock at the vector's time
    account = AccountFactory()
    if vector["scheme"] == "hmac":
        key = ApiKey.objects.create(key_id="bk_vectorkey", account=account, scheme="hmac", scopes=["read"],
                                    secret_encrypted=crypto.encrypt_secret(HMAC_SECRET))
    else:
        key = ApiKey.objects.create(key_id="bk_vectorkey", account=account, scheme="ed25519", scopes=["read"],
                                    public_key=ED25519_PUBLIC)
    monkeypatch.setattr(verifier, "now_ms", lambda: int(vector["timestamp"]) + 10)
    request = dict(key_id=key.key_id, timestamp=vector["timestamp"], nonce=vector["nonce"], method=vector["method"],
                   path=vector["path"], query=vector["query"], body_sha256=body_sha256(vector["body"].encode()),
                   source_ip="127.0.0.1")
    # then the published signature verifies, and a one-character change does not
    assert verifier.verify_request(signature=vector["signature"], **request).pk == key.pk
    flipped = ("B" if vector["signature"][0] != "B" else "C") + vector["signature"][1:]
    with pytest.raises(Exception) as refused:
        verifier.verify_request(signature=flipped, **{**request, "nonce": vector["nonce"] + "x"})
    assert refused.value.code == "invalid_credentials"
