"""Signatures verify with the reference Standard Webhooks library and the official client."""

from __future__ import annotations

import base64
import json
import subprocess
import time
from pathlib import Path

import pytest
import replicate.webhook
from standardwebhooks import Webhook, WebhookVerificationError

from vendo.webhooks.signing import (
    InvalidSecret,
    new_message_id,
    new_secret,
    sign,
    signature_headers,
    verify,
)

BODY = json.dumps({"id": "p1", "status": "succeeded", "output": ["a", " b\n"]}).encode()


def test_secret_shape_suits_both_clients() -> None:
    for _ in range(200):
        secret = new_secret()
        # Python 1.0.7 splits on "_" and wants two parts; JS keys on the last part.
        assert secret.count("_") == 1
        assert "-" not in secret
        assert len(base64.b64decode(secret.split("_")[1], validate=True)) == 32


def test_standardwebhooks_library_verifies() -> None:
    secret = new_secret()
    msg_id = new_message_id()
    headers = signature_headers(secret, msg_id, BODY)
    assert headers["webhook-id"] == msg_id
    assert json.loads(BODY) == Webhook(secret).verify(BODY, headers)


def test_tampered_body_or_other_secret_fails() -> None:
    secret = new_secret()
    headers = signature_headers(secret, new_message_id(), BODY)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY + b" ", headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(BODY, headers)
    assert not verify(secret, headers, BODY + b" ")
    assert verify(secret, headers, BODY)


def test_official_python_client_validates() -> None:
    secret = new_secret()
    headers = signature_headers(secret, new_message_id(), BODY)
    key = replicate.webhook.WebhookSigningSecret(key=secret)
    replicate.webhook.Webhooks.validate(
        headers=headers, body=BODY.decode(), secret=key, tolerance=60
    )


def test_rotation_sends_one_signature_per_secret() -> None:
    old, new = new_secret(), new_secret()
    headers = signature_headers([old, new], "msg_1", BODY, timestamp=int(time.time()))
    assert len(headers["webhook-signature"].split(" ")) == 2
    Webhook(old).verify(BODY, headers)
    Webhook(new).verify(BODY, headers)


def test_known_vector() -> None:
    # From the Standard Webhooks specification's reference tests.
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = b'{"test": 2432232314}'
    assert (
        sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body)
        == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    )


def test_timestamp_is_per_attempt_and_checked() -> None:
    secret = new_secret()
    old = signature_headers(secret, "msg_1", BODY, timestamp=int(time.time()) - 3600)
    assert not verify(secret, old, BODY)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY, old)


def test_bad_secret_is_refused() -> None:
    with pytest.raises(InvalidSecret):
        sign("nope", "msg_1", 1, BODY)
    with pytest.raises(InvalidSecret):
        sign("whsec_***", "msg_1", 1, BODY)


def test_official_js_client_validates(node_client: str) -> None:
    """npm replicate 1.4.0's validateWebhook (keys on the text after the last "_")."""
    js_dir = Path(__file__).resolve().parent.parent / "js"
    node = node_client
    secret = new_secret()
    good = signature_headers(secret, new_message_id(), BODY)
    forged = signature_headers(new_secret(), new_message_id(), BODY)
    script = """
const { validateWebhook } = require("replicate");
const cases = JSON.parse(require("fs").readFileSync(0, "utf8"));
Promise.all(cases.map((c) => validateWebhook({ headers: c.headers, body: c.body }, c.secret)))
  .then((r) => process.stdout.write(JSON.stringify(r)));
"""
    cases = [
        {"headers": good, "body": BODY.decode(), "secret": secret},
        {"headers": forged, "body": BODY.decode(), "secret": secret},
    ]
    out = subprocess.run(
        [node, "-e", script],
        input=json.dumps(cases),
        cwd=js_dir,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == [True, False]
