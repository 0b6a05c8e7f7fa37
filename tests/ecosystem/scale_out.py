"""Two memberdesk instances behind one PgBouncer act as one service: a session
made on one is honoured (and ended) on the other, a lifecycle step taken on
one is seen by the next request on the other, a deletion plan made on one is
confirmed on the other, and a concurrent workload spread over both leaves the
database consistent.

Usage: python3 scale_out.py URL_A URL_B   (demo data loaded)
"""
import sys
from concurrent.futures import ThreadPoolExecutor

import requests

a, b = sys.argv[1], sys.argv[2]
RUN = "so"  # prefix of the accounts this script creates


def call(url, query, variables=None, token=None, expect_error=None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = requests.post(
        url, json={"query": query, "variables": variables or {}}, headers=headers, timeout=60
    )
    body = response.json()
    if expect_error:
        codes = [e["extensions"]["code"] for e in body.get("errors", [])]
        assert expect_error in codes, (query, body)
        return body
    assert "errors" not in body, (query, body)
    return body["data"]


LOGIN = "mutation($u: String!, $p: String!) { login(username: $u, password: $p) { token } }"


def login(url, username, password="memberdesk-demo"):
    return call(url, LOGIN, {"u": username, "p": password})["login"]["token"]


ME = "{ me { username } }"

# A session is a row, not process memory: made on A, valid on B.
admin = login(a, "admin")
assert call(b, ME, token=admin)["me"]["username"] == "admin"

# A user created on A, deactivated on B: A refuses their login at once.
created = call(
    a,
    """mutation($u: String!) { createUser(input: {username: $u, password: "a long enough passphrase"}) { id } }""",
    {"u": f"{RUN}-member"},
    token=admin,
)["createUser"]["id"]
member = login(b, f"{RUN}-member", "a long enough passphrase")
call(b, "mutation($id: ID!) { deactivateUser(id: $id) { user { isActive } } }", {"id": created}, token=admin)
call(a, ME, token=member, expect_error="UNAUTHENTICATED")
call(a, LOGIN, {"u": f"{RUN}-member", "p": "a long enough passphrase"}, expect_error="ACCOUNT_INACTIVE")
assert call(a, "mutation($id: ID!) { reactivateUser(id: $id) { user { isActive } } }",
            {"id": created}, token=admin)["reactivateUser"]["user"]["isActive"] is True

# A deletion plan made on A is confirmed on B.
bob = call(a, '{ user(username: "bob") { id } }', token=admin)["user"]["id"]
plan = call(a, "query($id: ID!) { deletionPlan(userId: $id, policy: CASCADE) { token deleted { count } } }",
            {"id": bob}, token=admin)["deletionPlan"]
assert sum(r["count"] for r in plan["deleted"]) > 0, plan
done = call(b, """mutation($id: ID!, $t: String!) { deleteUser(id: $id, policy: CASCADE, planToken: $t) {
                    deleted } }""", {"id": bob, "t": plan["token"]}, token=admin)["deleteUser"]
assert done["deleted"] is True, done
assert call(a, '{ user(username: "bob") { id } }', token=admin)["user"] is None


# A concurrent workload spread over both instances: each worker creates a
# user through one instance and walks it through deactivation and
# reactivation alternating instances, while others page through users.
def lifecycle(n):
    first, second = (a, b) if n % 2 else (b, a)
    uid = call(first, """mutation($u: String!) { createUser(input: {username: $u, password: "x-long-passphrase-1"}) { id } }""", {"u": f"{RUN}-worker-{n}"}, token=admin)["createUser"]["id"]
    for _ in range(3):
        call(second, 'mutation($id: ID!) { deactivateUser(id: $id, input: {reason: "rota"}) { user { id } } }',
             {"id": uid}, token=admin)
        call(first, "mutation($id: ID!) { reactivateUser(id: $id) { user { id } } }", {"id": uid}, token=admin)
    return uid


def reader(n):
    url = a if n % 2 else b
    seen, after = 0, None
    while True:
        page = call(url, """query($after: String) { users(first: 3, after: $after) {
                              edges { node { id username groups { name } } } pageInfo { hasNextPage endCursor } } }""",
                    {"after": after}, token=admin)["users"]
        seen += len(page["edges"])
        if not page["pageInfo"]["hasNextPage"]:
            return seen
        after = page["pageInfo"]["endCursor"]


with ThreadPoolExecutor(max_workers=8) as pool:
    workers = [pool.submit(lifecycle, n) for n in range(12)]
    readers = [pool.submit(reader, n) for n in range(24)]
    ids = [w.result() for w in workers]
    assert all(r.result() >= 5 for r in readers)

# Both instances see the same end state, and the audit log holds every step
# taken on either: per worker, one creation and three of each transition.
for url in (a, b):
    users = call(url, "query($s: String) { users(first: 100, filter: {search: $s}) { edges { node { id isActive } } } }",
                 {"s": f"{RUN}-worker"}, token=admin)["users"]["edges"]
    assert sorted(u["node"]["id"] for u in users) == sorted(ids), users
    assert all(u["node"]["isActive"] for u in users), users
for uid in ids:
    entries = call(b, """query($id: ID!) { auditLog(first: 50, filter: {targetUserId: $id}) {
                           edges { node { action } } } }""", {"id": uid}, token=admin)["auditLog"]["edges"]
    actions = sorted(e["node"]["action"] for e in entries)
    assert actions.count("USER_DEACTIVATED") == 3 and actions.count("USER_REACTIVATED") == 3, actions

# Logging out on B ends the session on A too.
assert call(b, "mutation { logout }", token=admin)["logout"] is True
call(a, ME, token=admin, expect_error="UNAUTHENTICATED")
print(f"scale-out story passed across two instances ({len(ids)} concurrent lifecycles)")
