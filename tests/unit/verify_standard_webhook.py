#!/usr/bin/env python3
"""An independent receiver-side check of relay's webhook signatures, written from the Standard
Webhooks spec with the Python standard library only, so that relay's C++ signer is tested against
code that shares none of its parts.

Usage:
  verify_standard_webhook.py standard SECRET MSG_ID TIMESTAMP SIGNATURE_HEADER BODY_FILE
  verify_standard_webhook.py hex SECRET SIGNATURE_HEADER BODY_FILE

For the standard scheme the header may hold several space-separated signatures (a secret
rotation); one valid one is enough, as in the reference receivers. The hex scheme's header is
compared whole against one signature, as the receivers of that scheme do (a Flask or FastAPI
`hmac.compare_digest(header, expected)`, an Express `timingSafeEqual`): relay sends one value.
The timestamp tolerance check of real receivers is left out: the caller chooses the timestamp. Exit 0: valid, 1: invalid, 2: bad usage.
"""
import base64
import binascii
import hashlib
import hmac
import sys


def standard_key(secret):
    if secret.startswith("whsec_"):
        return base64.b64decode(secret[len("whsec_"):], validate=True)
    return secret.encode()


def verify_standard(secret, msg_id, timestamp, header, body):
    key = standard_key(secret)
    signed = msg_id.encode() + b"." + timestamp.encode() + b"." + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    for candidate in header.split(" "):
        version, _, signature = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(signature, expected):
            return True
    return False


def verify_hex(secret, header, body):
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(header, expected)


def main(argv):
    try:
        if len(argv) == 7 and argv[1] == "standard":
            _, _, secret, msg_id, timestamp, header, body_file = argv
            with open(body_file, "rb") as f:
                return 0 if verify_standard(secret, msg_id, timestamp, header, f.read()) else 1
        if len(argv) == 5 and argv[1] == "hex":
            _, _, secret, header, body_file = argv
            with open(body_file, "rb") as f:
                return 0 if verify_hex(secret, header, f.read()) else 1
    except (OSError, binascii.Error) as error:
        print(f"verify_standard_webhook: {error}", file=sys.stderr)
        return 2
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
