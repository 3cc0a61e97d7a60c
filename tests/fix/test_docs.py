"""docs/fix.md's worked Logon example is what the code computes and accepts."""
import re
from pathlib import Path

from apikeys import signing
from trading.fix.codec import FrameReader, encode
from trading.fix.logon import signed_string

DOC = (Path(__file__).resolve().parents[2] / "docs" / "fix.md").read_text()
EXAMPLE = DOC[DOC.index("Worked example"):]


def example(name: str) -> str:
    match = re.search(rf"^{name}\s+(\S+)", EXAMPLE, re.MULTILINE)
    assert match, f"docs/fix.md lost the example's {name}"
    return match.group(1)


def test_worked_logon_example_matches_the_code():
    key_id, secret, sending_time, seq = example("key id"), example("secret"), example("SendingTime"), example("MsgSeqNum")
    signature = signing.sign_hmac(secret, signed_string(sending_time, "A", seq, key_id, "BOURSE"))
    assert example("RawData") == signature
    logon = encode("A", [(49, key_id), (56, "BOURSE"), (34, seq), (52, sending_time)],
                   [(98, 0), (108, 30), (95, len(signature)), (96, signature)])
    assert logon.replace(b"\x01", b"|").decode() in DOC
    assert FrameReader().feed(logon)[0].message.get(96) == signature
