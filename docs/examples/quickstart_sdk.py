"""The quickstart with the Python SDK (sdk/python, `pip install ./sdk/python`):

    BOURSE_URL=http://127.0.0.1:8000 BOURSE_KEY_ID=bk_... BOURSE_SECRET=... python quickstart_sdk.py

For an Ed25519 key set BOURSE_PRIVATE_KEY (base64 of the 32-byte seed) instead of BOURSE_SECRET.
quickstart.py does the same with the standard library only."""
import os
import sys

from bourse import BourseError, Client


def main() -> None:
    client = Client(os.environ.get("BOURSE_URL", "http://127.0.0.1:8000"), os.environ["BOURSE_KEY_ID"],
                    secret=os.environ.get("BOURSE_SECRET"), private_key=os.environ.get("BOURSE_PRIVATE_KEY"))
    with client:
        offset = client.sync_clock()
        print(f"server time {client.time().server_time} (clock offset {offset} ms)")
        account = client.account()
        print(f"account {account.account_id} ({account.name}), key scopes {','.join(account.api_key.scopes)}")
        for row in client.iter_balances():
            print(f"{row.asset:<6} total {row.total:>22} available {row.available:>22} locked {row.locked:>22}")
        for entry in client.ledger(limit=5).results:
            print(f"ledger {entry.created_at} {entry.kind:<10} {entry.asset} {entry.amount} ({entry.bucket})")


if __name__ == "__main__":
    try:
        main()
    except BourseError as error:
        print(f"{error.status} {error.code}: {error.detail} (request {error.request_id})", file=sys.stderr)
        sys.exit(1)
