"""The REST API attacked from its own description: schemathesis generates requests from
`openapi/openapi.yaml` against the real binary, signed as the official SDKs sign them (a requests
session signs each final request: method, path, query and the exact body bytes) and unsigned.
Every response must be a non-5xx whose status, headers, content type and body match the document.

Run by ./scripts/test; `SINEW_SCHEMATHESIS_EXAMPLES` sets the examples per operation and mode.
"""

import hashlib
import hmac
import os
import re
import subprocess
import threading
import time
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("SINEW_BIN", os.path.join(ROOT, "target", "debug", "sinew"))
APP_ID, KEY, SECRET = "1", "st-key", "st-secret"
EXAMPLES = int(os.environ.get("SINEW_SCHEMATHESIS_EXAMPLES", "60"))
AUTH_PARAMS = {"auth_key", "auth_timestamp", "auth_version", "auth_signature", "body_md5"}


class Sinew:
    """The real binary on a free port, with one app whose credentials the signer knows."""

    def __init__(self):
        env = {k: v for k, v in os.environ.items() if not k.startswith("SINEW_")}
        env.update(SINEW_HOST="127.0.0.1", SINEW_PORT="0", SINEW_METRICS_ENABLED="false", SINEW_LOG="warn",
                   SINEW_APP_ID=APP_ID, SINEW_APP_KEY=KEY, SINEW_APP_SECRET=SECRET,
                   SINEW_DEBUG_CONSOLE_TOKEN="st-console-token")
        self.proc = subprocess.Popen([BIN], env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        deadline = time.time() + 15
        self.port = None
        while time.time() < deadline and self.port is None:
            m = re.search(r"listening on \S+:(\d+)", self.proc.stdout.readline())
            if m:
                self.port = int(m.group(1))
        if self.port is None:
            self.proc.kill()
            raise RuntimeError("sinew did not start")
        threading.Thread(target=self.proc.stdout.read, daemon=True).start()

    def stop(self):
        alive = self.proc.poll() is None
        self.proc.terminate()
        self.proc.wait(10)
        return alive


class SignedSession(requests.Session):
    """Signs every request it sends as the Pusher SDKs do: the generated auth_* values are replaced
    by a valid key, timestamp and version, `body_md5` of the bytes actually sent, and the HMAC of
    `METHOD\\npath\\nsorted query` with decoded values."""

    def send(self, request, **kwargs):
        parts = urlsplit(request.url)
        query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in AUTH_PARAMS]
        query += [("auth_key", KEY), ("auth_timestamp", str(int(time.time()))), ("auth_version", "1.0")]
        body = request.body or b""
        if isinstance(body, str):
            body = body.encode()
        if body:
            query.append(("body_md5", hashlib.md5(body).hexdigest()))
        canonical = "&".join(f"{k.lower()}={v}" for k, v in sorted(query, key=lambda kv: kv[0].lower()))
        to_sign = f"{request.method}\n{parts.path}\n{canonical}"
        signature = hmac.new(SECRET.encode(), to_sign.encode(), hashlib.sha256).hexdigest()
        query.append(("auth_signature", signature))
        request.url = urlunsplit(parts._replace(query=urlencode(query)))
        return super().send(request, **kwargs)


SERVER = Sinew()
SIGNED, UNSIGNED = SignedSession(), requests.Session()
BASE = f"http://127.0.0.1:{SERVER.port}"

schema = schemathesis.openapi.from_path(os.path.join(ROOT, "openapi", "openapi.yaml"))
schema.config.update(base_url=BASE)
# What the document promises about responses: never a 5xx, and status, content type, headers and
# body as described. With SINEW_SCHEMATHESIS_ALL_CHECKS=1 every check runs, including whether each
# schema-violating request is refused and each schema-valid one accepted; what that run still
# reports are rules the document states in prose because a schema cannot (`info=user_count` needs a
# `presence-` `filter_by_prefix`, `info=cache` is for cache channels, user ids are bounded in bytes
# not characters) and the WebSocket route, whose `Connection` header the HTTP client replaces.
RESPONSE_CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
if os.environ.get("SINEW_SCHEMATHESIS_ALL_CHECKS"):
    # Every check schemathesis has (a manual run: see the note above on prose rules).
    RESPONSE_CHECKS = None
EXAMPLES_PER_OPERATION = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)


@schema.parametrize()
@EXAMPLES_PER_OPERATION
def test_signed_requests_match_the_document(case):
    # `ignored_auth` (credentials removed or corrupted must get 401) is the unsigned run's: this
    # session signs every request again.
    case.call_and_validate(session=SIGNED, checks=RESPONSE_CHECKS, excluded_checks=[ignored_auth])


@schema.parametrize()
@EXAMPLES_PER_OPERATION
def test_unsigned_requests_match_the_document(case):
    # Also: a request whose credentials are missing or corrupted is refused (`ignored_auth`).
    case.call_and_validate(session=UNSIGNED, checks=None if RESPONSE_CHECKS is None else [*RESPONSE_CHECKS, ignored_auth])


def test_the_server_is_still_up():
    assert requests.get(f"{BASE}/up", timeout=5).status_code == 200
    assert SERVER.stop(), "sinew exited during the run"
