"""Webhooks from two instances: two `memberdesk serve` processes on one fresh
database share the outbox, and a receiver here verifies every delivery with
PyPI's `standardwebhooks`.

Each event (a few hundred: 200 users created, deactivated in one bulk
operation, reactivated one by one, through both instances) must arrive
exactly once per endpoint (by `webhook-id`), in the order of each user's
changes, and both instances must have sent some.

Then the receiver goes away for a real minute (connection refused) while
more changes are made, with the default retry timings (5 s, doubling):
once it is back, every event of that minute arrives, each once, in order
per user, none given up. (About two minutes, most of it the wait.)

Usage: python3 webhooks_scale_out.py PATH/TO/memberdesk
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
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor

import requests
from standardwebhooks import Webhook

binary = sys.argv[1]
admin_url = os.environ.get("MEMBERDESK_TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
database = f"memberdesk_webhooks_scale_{os.getpid()}"
database_url = admin_url.rsplit("/", 1)[0] + "/" + database
USERS = 200
PREFIX = "wh"  # usernames this script creates: wh-0 … wh-199


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sql(query):
    return subprocess.run(["psql", database_url, "-tAc", query], check=True,
                          capture_output=True, text=True).stdout.strip()


# Which process holds the other end of a connection: the receiver sees only
# the sender's port; /proc maps it to the socket's inode, and the inode to
# the process whose descriptors include it. How both instances are seen
# sending, without anything in memberdesk to tell them apart.
servers = {}  # pid -> "A" / "B"


def sender_of(port):
    inode = None
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                for line in f.readlines()[1:]:
                    fields = line.split()
                    if int(fields[1].split(":")[1], 16) == port:
                        inode = fields[9]
                        break
        except OSError:
            continue
        if inode:
            break
    if inode is None:
        return "?"
    for pid, name in servers.items():
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                if os.readlink(f"/proc/{pid}/fd/{fd}") == f"socket:[{inode}]":
                    return name
        except OSError:
            continue
    return "?"


received = []  # (path, headers, body, sender), in arrival order
lock = threading.Lock()


class Receiver(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["content-length"]))
        sender = sender_of(self.client_address[1])
        with lock:
            received.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body, sender))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def listen(port):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


receiver_port = free_port()
receiver = listen(receiver_port)

env = dict(os.environ, DATABASE_URL=database_url,
           MEMBERDESK_WEBHOOK_ALLOW_HTTP="true", MEMBERDESK_WEBHOOK_ALLOW_PRIVATE="true")
logs = open(os.path.join(tempfile.gettempdir(), f"{database}.log"), "w")
processes, urls = [], []


def start(name, *args):
    port = free_port()
    process = subprocess.Popen([binary, "serve", *args, "--bind", f"127.0.0.1:{port}"],
                               env=env, stdout=logs, stderr=logs)
    processes.append(process)
    servers[process.pid] = name
    for _ in range(300):
        try:
            requests.get(f"http://127.0.0.1:{port}/readyz", timeout=5).raise_for_status()
            break
        except requests.RequestException:
            time.sleep(0.2)
    urls.append(f"http://127.0.0.1:{port}/graphql")


def gql(url, query, variables=None, token=None):
    headers = {"authorization": f"Bearer {token}"} if token else {}
    answer = requests.post(url, json={"query": query, "variables": variables or {}},
                           headers=headers, timeout=120).json()
    assert "errors" not in answer, answer
    return answer["data"]


def wait_until_drained(expected, within):
    """Waits until `expected` requests arrived and nothing is pending."""
    deadline = time.time() + within
    while time.time() < deadline:
        if len(received) >= expected and sql("SELECT count(*) FROM webhook_deliveries WHERE status = 'PENDING'") == "0":
            break
        time.sleep(0.5)
    time.sleep(2)  # anything sent twice would arrive meanwhile
    assert sql("SELECT count(*) FROM webhook_deliveries WHERE status <> 'DELIVERED'") == "0", \
        sql("SELECT status, count(*) FROM webhook_deliveries GROUP BY status")


def check(secrets, expected_per_user):
    """Every delivery verifies; per endpoint, each event arrived once, and
    each user's events in the order of their changes."""
    per_endpoint = defaultdict(list)
    for path, headers, body, sender in received:
        event = Webhook(secrets[path]).verify(body, headers)
        per_endpoint[path].append((headers["webhook-id"], event))
    assert set(per_endpoint) == set(secrets), per_endpoint.keys()
    for path, events in per_endpoint.items():
        ids = [message_id for message_id, _ in events]
        assert len(ids) == len(set(ids)), f"{path}: {len(ids) - len(set(ids))} events arrived twice"
        per_user = defaultdict(list)
        for message_id, event in events:
            user = event["data"]["user"]["username"]
            per_user[user].append((int(message_id.removeprefix("msg_")), event["type"]))
        assert len(per_user) == len(expected_per_user), (path, len(per_user))
        for user, got in per_user.items():
            assert [kind for _, kind in got] == expected_per_user[user], (path, user, got)
            assert [n for n, _ in got] == sorted(n for n, _ in got), (path, user, got)
    return per_endpoint


try:
    start("A", "--demo")
    start("B")
    a, b = urls
    token = gql(a, 'mutation { login(username: "admin", password: "memberdesk-demo") { token } }')["login"]["token"]
    secrets = {}
    for path in ("/first", "/second"):
        hook = gql(a, "mutation($url: String!, $events: [String!]!) { createWebhook(url: $url, events: $events) { secret } }",
                   {"url": f"http://127.0.0.1:{receiver_port}{path}",
                    "events": ["user.created", "user.deactivated", "user.reactivated"]}, token)["createWebhook"]
        secrets[path] = hook["secret"]

    # 200 users, created through both instances at once.
    def create(n):
        return gql(urls[n % 2], """mutation($u: String!) { createUser(input: {username: $u,
                                     password: "a long enough passphrase 7"}) { id } }""",
                   {"u": f"{PREFIX}-{n}"}, token)["createUser"]["id"]

    with ThreadPoolExecutor(max_workers=4) as pool:
        ids = list(pool.map(create, range(USERS)))
    # One bulk deactivation of all of them on B, then each reactivated,
    # alternating instances.
    bulk = gql(b, """mutation($s: String) { deactivateUsers(filter: {search: $s, isActive: true}) {
                         skipped { code } } }""", {"s": f"{PREFIX}-"}, token)["deactivateUsers"]
    assert bulk["skipped"] == [], bulk
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda n: gql(urls[n % 2], "mutation($id: ID!) { reactivateUser(id: $id) { user { id } } }",
                                    {"id": ids[n]}, token), range(USERS)))

    expected = {f"{PREFIX}-{n}": ["user.created", "user.deactivated", "user.reactivated"] for n in range(USERS)}
    wait_until_drained(3 * USERS * len(secrets), within=300)
    check(secrets, expected)
    senders = defaultdict(int)
    for _, _, _, sender in received:
        senders[sender] += 1
    assert senders["A"] > 0 and senders["B"] > 0, dict(senders)
    assert sql("SELECT count(*) FROM webhook_attempts") == str(len(received)), "one attempt per delivery"
    print(f"webhooks from two instances: {len(received)} deliveries ({3 * USERS} events x {len(secrets)} endpoints) "
          f"verified with standardwebhooks, each once, in order per user; sent by A {senders['A']}, "
          f"B {senders['B']}, unattributed {senders['?']}")

    # The receiver is down (its port refuses connections) for 60 s while
    # 50 users are deactivated, reactivated and deactivated again.
    first_round = len(received)
    received.clear()
    receiver.shutdown()
    receiver.server_close()
    down_at = time.time()
    some = range(50)
    for kind in ("deactivateUser", "reactivateUser", "deactivateUser"):
        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(lambda n: gql(urls[n % 2], f"mutation($id: ID!) {{ {kind}(id: $id) {{ user {{ id }} }} }}",
                                        {"id": ids[n]}, token), some))
    time.sleep(max(0.0, down_at + 60 - time.time()))
    refused = int(sql("SELECT count(*) FROM webhook_attempts WHERE error IS NOT NULL"))
    assert refused >= 2 * len(secrets), f"{refused} failed attempts while the receiver was down"
    assert not received
    receiver = listen(receiver_port)
    back_at = time.time()
    wait_until_drained(3 * len(some) * len(secrets), within=600)
    drained_after = time.time() - back_at
    check(secrets, {f"{PREFIX}-{n}": ["user.deactivated", "user.reactivated", "user.deactivated"] for n in some})
    assert sql("SELECT count(*) FROM webhook_attempts WHERE error IS NULL") == str(first_round + len(received)), \
        "one successful attempt per delivery"
    print(f"webhooks after a minute down: {len(received)} deliveries ({3 * len(some)} events x {len(secrets)} "
          f"endpoints), queued while the receiver refused connections ({refused} failed attempts), all arrived "
          f"each once, in order per user, the last {drained_after:.0f} s after it returned")
finally:
    for process in processes:
        process.terminate()
        process.wait()
    receiver.shutdown()
    subprocess.run(["psql", admin_url, "-qc", f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
