"""Webhooks as a receiver sees them: a memberdesk of its own (fresh database,
demo data, http and 127.0.0.1 allowed) posts lifecycle events to an HTTP
server here, and every delivery must verify with PyPI's `standardwebhooks`
(the Standard Webhooks reference library), arrive once, in the order of the
changes, and carry no email or name.

Usage: python3 webhooks_receiver.py PATH/TO/memberdesk
"""
import http.server
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

binary = sys.argv[1]
admin_url = os.environ.get("MEMBERDESK_TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
database = f"memberdesk_webhooks_{os.getpid()}"
database_url = admin_url.rsplit("/", 1)[0] + "/" + database


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


received = []


class Receiver(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["content-length"]))
        received.append(({k.lower(): v for k, v in self.headers.items()}, body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


receiver = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Receiver)
threading.Thread(target=receiver.serve_forever, daemon=True).start()

port = free_port()
env = dict(os.environ, DATABASE_URL=database_url,
           MEMBERDESK_WEBHOOK_ALLOW_HTTP="true", MEMBERDESK_WEBHOOK_ALLOW_PRIVATE="true")
log = open(os.path.join(tempfile.gettempdir(), f"{database}.log"), "w")
server = subprocess.Popen([binary, "serve", "--demo", "--bind", f"127.0.0.1:{port}"],
                          env=env, stdout=log, stderr=log)
graphql_url = f"http://127.0.0.1:{port}/graphql"


def gql(query, variables=None, token=None):
    request = urllib.request.Request(
        graphql_url,
        data=json.dumps({"query": query, "variables": variables or {}}).encode(),
        headers={"content-type": "application/json", **({"authorization": f"Bearer {token}"} if token else {})},
    )
    with urllib.request.urlopen(request) as response:
        answer = json.load(response)
    assert "errors" not in answer, answer
    return answer["data"]


try:
    for _ in range(150):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz")
            break
        except OSError:
            time.sleep(0.2)
    token = gql('mutation { login(username: "admin", password: "memberdesk-demo") { token } }')["login"]["token"]
    hook = gql(
        "mutation($url: String!, $events: [String!]!) { createWebhook(url: $url, events: $events) { id secret } }",
        {"url": f"http://127.0.0.1:{receiver.server_address[1]}/in",
         "events": ["user.created", "user.deactivated", "user.reactivated", "user.anonymized"]},
        token,
    )["createWebhook"]
    user = gql(
        "mutation($input: CreateUserInput!) { createUser(input: $input) { id } }",
        {"input": {"username": "hooked", "email": "hooked@private.example", "firstName": "Hermione",
                   "password": "an unusual passphrase for hooks 7"}},
        token,
    )["createUser"]
    for operation in ["deactivateUser(id: $id) { user { id } }", "reactivateUser(id: $id) { user { id } }",
                      "anonymizeUser(id: $id) { user { id } }"]:
        gql(f"mutation($id: ID!) {{ {operation} }}", {"id": user["id"]}, token)

    deadline = time.time() + 30
    while len(received) < 4 and time.time() < deadline:
        time.sleep(0.1)
    time.sleep(1)  # anything sent twice would arrive meanwhile
    assert len(received) == 4, f"{len(received)} deliveries: {received}"

    verifier = Webhook(hook["secret"])
    events = [verifier.verify(body, headers) for headers, body in received]
    assert [e["type"] for e in events] == ["user.created", "user.deactivated", "user.reactivated",
                                          "user.anonymized"], events
    assert len({headers["webhook-id"] for headers, _ in received}) == 4
    for _, body in received:
        text = body.decode()
        assert "private.example" not in text and "Hermione" not in text, text
    assert events[3]["data"]["user"]["username"].startswith("deleted-user-"), events[3]

    # The library refuses what memberdesk did not sign.
    headers, body = received[0]
    try:
        verifier.verify(body.replace(b"user.created", b"user.deleted"), headers)
        raise AssertionError("a tampered body verified")
    except WebhookVerificationError:
        pass
    print(f"webhooks: {len(events)} deliveries verified with standardwebhooks, in order, each once")
finally:
    server.terminate()
    server.wait()
    receiver.shutdown()
    subprocess.run(["psql", admin_url, "-qc", f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
