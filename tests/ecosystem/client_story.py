"""The member story through a widely used GraphQL client (Python's `gql`),
as a client author sees it: deactivate -> reactivate -> deletion plan ->
anonymize, with the schema fetched by introspection and every document
validated client-side before it is sent.

Usage: python3 client_story.py http://127.0.0.1:PORT/graphql   (demo data loaded)
"""
import sys

from gql import Client, gql
from gql.transport.exceptions import TransportQueryError
from gql.transport.requests import RequestsHTTPTransport

url = sys.argv[1]


def client(token=None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    transport = RequestsHTTPTransport(url=url, headers=headers, retries=0)
    return Client(transport=transport, fetch_schema_from_transport=True)


anonymous = client()
token = anonymous.execute(
    gql('mutation { login(username: "admin", password: "memberdesk-demo") { token } }')
)["login"]["token"]
admin = client(token)
alice = admin.execute(gql('query { user(username: "alice") { id groups { name } } }'))["user"]

done = admin.execute(
    gql(
        """mutation($id: ID!) { deactivateUser(id: $id, input: { reason: "on leave" }) {
             user { isActive } sessionsRevoked removedGroups { name } } }"""
    ),
    variable_values={"id": alice["id"]},
)["deactivateUser"]
assert done["user"]["isActive"] is False, done

# The client sees contract error codes in `extensions`.
try:
    anonymous.execute(
        gql('mutation { login(username: "alice", password: "memberdesk-demo") { token } }')
    )
    raise AssertionError("a deactivated user logged in")
except TransportQueryError as error:
    assert error.errors[0]["extensions"]["code"] == "ACCOUNT_INACTIVE", error.errors

back = admin.execute(
    gql(
        """mutation($id: ID!) { reactivateUser(id: $id, restoreAccess: true) {
             user { isActive groups { name } } restoredGroups { name } } }"""
    ),
    variable_values={"id": alice["id"]},
)["reactivateUser"]
assert back["user"]["isActive"] is True, back
assert back["user"]["groups"] == alice["groups"], back

plan = admin.execute(
    gql(
        """query($id: ID!) { deletionPlan(userId: $id, policy: PROTECT) {
             allowed protected { relation count } token } }"""
    ),
    variable_values={"id": alice["id"]},
)["deletionPlan"]
assert plan["allowed"] is False and plan["protected"], plan  # alice has voted

export = admin.execute(
    gql("query($id: ID!) { exportUserData(userId: $id) }"), variable_values={"id": alice["id"]}
)["exportUserData"]
assert export["profile"]["username"] == "alice", export

gone = admin.execute(
    gql(
        """mutation($id: ID!) { anonymizeUser(id: $id, reason: "erasure request") {
             user { username anonymizedAt } } }"""
    ),
    variable_values={"id": alice["id"]},
)["anonymizeUser"]
assert gone["user"]["username"].startswith("deleted-user-"), gone
print("client story (python gql): deactivate, reactivate, deletion plan, export, anonymize: ok")
