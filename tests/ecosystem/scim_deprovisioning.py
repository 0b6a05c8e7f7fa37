"""The deprovisioning stories of two identity providers, through the PyPI
`scim2-client` (a client nobody here wrote): Okta deactivates with
`{"op": "replace", "path": "active", "value": false}`, Microsoft Entra ID
with `{"op": "Replace", "path": "active", "value": "False"}` (capitalised
op, boolean as a string). Each must end the person's live GraphQL session
at once and leave exactly one USER_DEACTIVATED entry naming the client.

Usage: scim_deprovisioning.py GRAPHQL_URL SCIM_BASE OKTA_TOKEN ENTRA_TOKEN
(demo data loaded: `admin` / `memberdesk-demo` reads the audit log).
"""

import json
import sys
import urllib.request

from httpx2 import Client
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_models import PatchOp, PatchOperation, User

graphql, scim_base, okta_token, entra_token = sys.argv[1:5]
PASSWORD = "a long and unguessable passphrase 42"


def gql(query, variables=None, token=None):
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    req = urllib.request.Request(graphql, body, {"Content-Type": "application/json"})
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(req) as resp:
        return json.load(resp)


def login(username, password):
    done = gql("mutation($u: String!, $p: String!) { login(username: $u, password: $p) { token } }",
               {"u": username, "p": password})
    return done["data"]["login"]["token"]


admin = login("admin", "memberdesk-demo")


def deactivations_of(username):
    found = gql("""query($u: String!) { auditLog(filter: { targetUsername: $u, action: USER_DEACTIVATED }) {
                   nodes { actorUsername } } }""", {"u": username}, admin)
    return [n["actorUsername"] for n in found["data"]["auditLog"]["nodes"]]


def scim_client(token):
    http = Client(base_url=scim_base, headers={"Authorization": f"Bearer {token}"})
    client = SyncSCIMClient(http)
    client.discover()
    return client


def story(name, token, patch):
    username = f"{name}-leaver"
    created = gql("mutation($u: String!, $p: String!) { createUser(input: { username: $u, password: $p }) { id } }",
                  {"u": username, "p": PASSWORD}, admin)
    assert "errors" not in created, created
    session = login(username, PASSWORD)
    assert gql("{ me { username } }", token=session)["data"]["me"]["username"] == username

    client = scim_client(token)
    found = client.query(User, query_parameters={"filter": f'userName eq "{username}"'})
    assert found.total_results == 1, found
    user_id = found.resources[0].id
    patched = patch(client, user_id)
    assert patched.active is False, patched

    me = gql("{ me { username } }", token=session)
    assert me["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED", me
    assert deactivations_of(username) == [f"scim:{name}"], deactivations_of(username)
    # The provider retries (they do): nothing more happens, nothing more is audited.
    patch(client, user_id)
    assert deactivations_of(username) == [f"scim:{name}"]
    print(f"{name}: session ended at once, one USER_DEACTIVATED entry by scim:{name}")


def okta(client, user_id):
    op = PatchOp[User](operations=[PatchOperation[User](op=PatchOperation.Op.replace_, path="active", value=False)])
    return client.modify(User, user_id, op)


def entra(client, user_id):
    # Entra ID's own spelling, which scim2-models (rightly) would not produce.
    op = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
          "Operations": [{"op": "Replace", "path": "active", "value": "False"}]}
    return client.modify(User, user_id, op, check_request_payload=False)


story("okta", okta_token, okta)
story("entra", entra_token, entra)
