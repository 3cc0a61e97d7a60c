"""Property: a signature verifies for exactly the request it was made for; changing any one
signed component (time, nonce, method, path, query, body) makes it fail, for both schemes."""
import base64

from hypothesis import given, settings
from hypothesis import strategies as st

from apikeys import crypto, verifier
from apikeys.models import ApiKey
from apikeys.signing import body_sha256, sign_ed25519, sign_hmac, signed_string

HMAC_KEY_SECRET = crypto.new_hmac_secret()
SEED, PUBLIC = crypto.ed25519_generate()

text = st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), max_size=40)
requests = st.fixed_dictionaries({
    "timestamp": st.integers(min_value=0, max_value=10**13).map(str),
    "nonce": st.from_regex(r"[A-Za-z0-9_-]{16,64}", fullmatch=True),
    "method": st.sampled_from(["GET", "POST", "DELETE", "PUT"]),
    "path": text.map(lambda t: "/api/v1/" + t),
    "query": text,
    "body": st.binary(max_size=200),
})


def key(scheme):
    # Unsaved: signature_valid needs only the credential fields.
    if scheme == "hmac":
        return ApiKey(scheme="hmac", secret_encrypted=crypto.encrypt_secret(HMAC_KEY_SECRET))
    return ApiKey(scheme="ed25519", public_key=PUBLIC)


def message(req):
    return signed_string(req["timestamp"], req["nonce"], req["method"], req["path"], req["query"],
                         body_sha256(req["body"])).encode()


def sign(scheme, req):
    raw = sign_hmac(HMAC_KEY_SECRET, message(req)) if scheme == "hmac" else sign_ed25519(SEED, message(req))
    return base64.b64decode(raw)


@settings(max_examples=150, deadline=None)
@given(scheme=st.sampled_from(["hmac", "ed25519"]), req=requests, other=requests,
       field=st.sampled_from(["timestamp", "nonce", "method", "path", "query", "body"]))
def test_signature_binds_every_component(scheme, req, other, field):
    signature = sign(scheme, req)
    assert verifier.signature_valid(key(scheme), message(req), signature)
    changed = {**req, field: other[field]}
    if changed[field] != req[field]:
        assert not verifier.signature_valid(key(scheme), message(changed), signature)
