#!/usr/bin/env python3
"""An OAuth 1.0 (RFC 5849) resource server for anyauth's tests.

Every request is checked by oauthlib's ResourceEndpoint (Debian's
python3-oauthlib; RSA needs python3-jwt and python3-cryptography), with a
RequestValidator that knows one client and one token (from the config
file) and refuses a nonce it has seen before. A request that is not valid
gets 401 with `WWW-Authenticate: OAuth realm="test"`; a valid one gets 200
and a JSON body saying what was verified.

oauthlib does not check oauth_body_hash (the OAuth Request Body Hash
draft): this server does. When the parameter is present it must be the
base64 hash of the raw body (SHA-1 for *-SHA1 and PLAINTEXT, SHA-256 for
*-SHA256), and it must not come with a form-encoded body. Under
/bodyhash/ a request whose body is not form-encoded must carry it.

Usage: verifier.py PORT CONFIG.json

The config names the credentials, the RSA public key, an optional TLS
port with its certificate, the JSON-lines event log (one line per
request, written before the response), and the directory whose path
/_ready answers. The server exits when its standard input reaches end of
file, so that it does not outlive the test binary that started it.
"""

import base64
import hashlib
import hmac
import json
import os
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from oauthlib.oauth1 import RequestValidator, ResourceEndpoint
from oauthlib.oauth1.rfc5849 import errors as oauth_errors

REALM = "test"
FORM = "application/x-www-form-urlencoded"
METHODS = ("HMAC-SHA1", "HMAC-SHA256", "RSA-SHA1", "RSA-SHA256", "PLAINTEXT")


class Validator(RequestValidator):
    """One client, one token, nonces remembered for the server's life."""

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        with open(cfg["rsa_public_key"]) as f:
            self.rsa_public = f.read()
        self.lock = threading.Lock()
        self.seen = set()

    @property
    def allowed_signature_methods(self):
        return METHODS

    @property
    def enforce_ssl(self):
        # The tests run over http://127.0.0.1 as well as https; PLAINTEXT
        # over http is the client's to refuse, and it does (see
        # schemes.OAuth1).
        return False

    @property
    def realms(self):
        return [REALM]

    @property
    def dummy_client(self):
        return "dummyClient0123456789"

    @property
    def dummy_access_token(self):
        return "dummyToken0123456789"

    def get_client_secret(self, client_key, request):
        if client_key == self.cfg["consumer_key"]:
            return self.cfg["consumer_secret"]
        return "dummy"

    def get_access_token_secret(self, client_key, token, request):
        if client_key == self.cfg["consumer_key"] and token == self.cfg["token"]:
            return self.cfg["token_secret"]
        return "dummy"

    def get_rsa_key(self, client_key, request):
        return self.rsa_public

    def validate_client_key(self, client_key, request):
        return client_key == self.cfg["consumer_key"]

    def validate_access_token(self, client_key, token, request):
        return client_key == self.cfg["consumer_key"] and token == self.cfg["token"]

    def validate_timestamp_and_nonce(self, client_key, timestamp, nonce, request,
                                     request_token=None, access_token=None):
        with self.lock:
            if nonce in self.seen:
                request.anyauth_reason = "nonce reused: " + nonce
                return False
            self.seen.add(nonce)
        return True

    def validate_realms(self, client_key, token, request, uri=None, realms=None):
        return True


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "anyauth-oauth1-verifier"

    def do_GET(self):
        self.handle_any()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_GET

    def log_message(self, fmt, *args):
        sys.stderr.write("%s %s\n" % (self.server.scheme, fmt % args))

    def read_body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""

    def reply(self, status, body, content_type="application/json", challenge=False):
        data = body.encode("utf-8")
        self.send_response(status)
        if challenge:
            self.send_header("WWW-Authenticate", 'OAuth realm="%s"' % REALM)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def handle_any(self):
        srv = self.server
        body = self.read_body()
        if self.path == "/_ready":
            self.reply(200, srv.cfg["dir"] + "\n", "text/plain")
            return
        uri = "%s://%s%s" % (srv.scheme, self.headers.get("Host", ""), self.path)
        headers = {k: v for k, v in self.headers.items()}
        content_type = self.headers.get("Content-Type", "")
        form = FORM in content_type.lower()
        auth = self.headers.get("Authorization", "")
        event = {
            "time": time.time(),
            "scheme": srv.scheme,
            "method": self.command,
            "path": self.path,
            "authorization": auth[:6].lower() == "oauth ",
            "body_length": len(body),
        }
        ok, req = srv.endpoint.validate_protected_resource_request(
            uri, http_method=self.command, body=body.decode("utf-8", "replace"),
            headers=headers, realms=[REALM])
        reason = ""
        body_hash = "absent"
        if req is not None:
            event["signature_method"] = req.signature_method or ""
            event["nonce"] = req.nonce or ""
            event["client_key"] = req.client_key or ""
            event["realm"] = req.realm or ""
        if not ok:
            reason = self.why(req, uri, body, headers)
        else:
            given = req.oauth_params.get("oauth_body_hash")
            if given is not None:
                if form:
                    ok, reason = False, "oauth_body_hash with a form-encoded body"
                else:
                    h = hashlib.sha256 if req.signature_method.endswith("SHA256") else hashlib.sha1
                    want = base64.b64encode(h(body).digest()).decode()
                    if hmac.compare_digest(want, given):
                        body_hash = "verified"
                    else:
                        ok, reason = False, "oauth_body_hash does not match the body"
            elif self.path.startswith("/bodyhash/") and not form:
                ok, reason = False, "oauth_body_hash required"
        event.update(verified=ok, reason=reason, body_hash=body_hash, status=200 if ok else 401)
        srv.log_event(event)
        if not ok:
            self.reply(401, json.dumps({"verified": False, "reason": reason}) + "\n", challenge=True)
            return
        params = sorted([k, v] for k, v in req.params if not k.startswith("oauth_"))
        self.reply(200, json.dumps({
            "verified": True,
            "client_key": req.client_key,
            "token": req.resource_owner_key,
            "signature_method": req.signature_method,
            "nonce": req.nonce,
            "timestamp": req.timestamp,
            "realm": req.realm or "",
            "body_hash": body_hash,
            "body_sha256": hashlib.sha256(body).hexdigest(),
            "body_length": len(body),
            "params": params,
            "method": self.command,
            "path": self.path,
        }) + "\n")

    def why(self, req, uri, body, headers):
        """Says why oauthlib refused, which it does not return."""
        if not self.headers.get("Authorization"):
            return "no OAuth credentials"
        if req is None:
            try:
                self.server.endpoint._create_request(uri, self.command, body.decode("utf-8", "replace"), headers)
            except oauth_errors.OAuth1Error as e:
                return "malformed: %s" % e.description
            return "no OAuth credentials"
        try:
            self.server.endpoint._check_transport_security(req)
            self.server.endpoint._check_mandatory_parameters(req)
        except oauth_errors.OAuth1Error as e:
            return "%s" % e.description
        if getattr(req, "anyauth_reason", ""):
            return req.anyauth_reason
        bad = [k for k, v in req.validator_log.items() if not v]
        if bad:
            return "invalid " + ", ".join(sorted(bad))
        return "refused"


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, addr, scheme, cfg, endpoint, events):
        super().__init__(addr, Handler)
        self.scheme = scheme
        self.cfg = cfg
        self.endpoint = endpoint
        self.events = events

    def log_event(self, event):
        self.events(event)


def main():
    port = int(sys.argv[1])
    with open(sys.argv[2]) as f:
        cfg = json.load(f)
    endpoint = ResourceEndpoint(Validator(cfg))
    lock = threading.Lock()
    log = open(cfg["event_log"], "a", buffering=1)

    def events(event):
        with lock:
            log.write(json.dumps(event) + "\n")
            log.flush()

    servers = [Server(("127.0.0.1", port), "http", cfg, endpoint, events)]
    if cfg.get("tls_port"):
        tls = Server(("127.0.0.1", cfg["tls_port"]), "https", cfg, endpoint, events)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cfg["tls_cert"], cfg["tls_key"])
        tls.socket = ctx.wrap_socket(tls.socket, server_side=True)
        servers.append(tls)
    for s in servers:
        threading.Thread(target=s.serve_forever, daemon=True).start()
    sys.stderr.write("oauth1 verifier on %s\n" % ", ".join(
        "%s://127.0.0.1:%d" % (s.scheme, s.server_address[1]) for s in servers))
    sys.stderr.flush()
    # Until the parent goes away (or closes our stdin).
    while sys.stdin.buffer.read(4096):
        pass
    os._exit(0)


if __name__ == "__main__":
    main()
