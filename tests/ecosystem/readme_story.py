"""The README's story, run as written: every ```graphql block of the section
"Removing a member safely" is taken from README.md, its placeholders
(`<alice's id>`, `<token from the plan>`) filled in, and sent in order to a
server with fresh demo data; each answer must show what the README promises
(removed groups, permissions and revoked sessions, `restoreAccess` bringing
them back, a dormant account found, votes counted by the deletion plan, an
erasure). Also the `deactivate-dormant --dry-run` the section names and the
`User managers` role it documents. Standard library only.

Usage: python3 readme_story.py http://127.0.0.1:PORT/graphql [path/to/memberdesk]
(the binary, with DATABASE_URL set to the server's database, for the CLI step).
Run it before client_story.py, on untouched demo data.
"""
import json
import os
import re
import subprocess
import sys
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
README = os.path.join(HERE, "..", "..", "README.md")
SECTION = "## Removing a member safely"
url = sys.argv[1]
binary = sys.argv[2] if len(sys.argv) > 2 else None


def post(query, variables=None, token=None):
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    request = urllib.request.Request(url, data=body, method="POST")
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def ok(query, variables=None, token=None):
    answer = post(query, variables, token)
    assert "errors" not in answer, f"{query}\n-> {answer}"
    return answer["data"]


def story_blocks():
    """The section's ```graphql blocks, in order."""
    text = open(README, encoding="utf-8").read()
    start = text.index(SECTION)
    end = text.find("\n## ", start + len(SECTION))
    section = text[start : end if end >= 0 else len(text)]
    return re.findall(r"```graphql\n(.*?)```", section, re.S)


def operations(block):
    """Splits a block into its operations (balanced top-level braces)."""
    ops, depth, start, in_string = [], 0, None, False
    for i, ch in enumerate(block):
        if in_string:
            in_string = ch != '"' or block[i - 1] == "\\"
            continue
        if ch == '"':
            in_string = True
        elif ch == "{":
            if depth == 0 and start is None:
                start = block.rfind("\n", 0, i) + 1
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                ops.append(block[start : i + 1].strip())
                start = None
    return ops


def root_field(op):
    return re.search(r"\{\s*(\w+)", op).group(1)


def user_id(token, username):
    found = ok("query($u: String!) { user(username: $u) { id } }", {"u": username}, token)
    assert found["user"], f"no demo user {username!r}"
    return found["user"]["id"]


def fill(op, token, plan_token):
    """Replaces the README's placeholders with real values."""
    op = re.sub(r"<(\w+)'s id>", lambda m: user_id(token, m.group(1)), op)
    if "<token from the plan>" in op:
        assert plan_token, "the README confirms a plan before making one"
        op = op.replace("<token from the plan>", plan_token)
    return op


def relation(entries, name):
    return next((e["count"] for e in entries if e["relation"] == name), 0)


def check(field, answer):
    """What the README promises each step shows on the demo data."""
    if field == "deactivateUser":
        assert answer["user"]["isActive"] is False, answer
        assert answer["sessionsRevoked"] > 0, answer
        assert answer["removedGroups"] and answer["removedPermissions"], answer
    elif field == "reactivateUser":
        assert answer["user"]["isActive"] is True and answer["user"]["groups"], answer
        assert answer["restoredGroups"] and answer["restoredPermissions"], answer
    elif field == "deactivateUsers":
        assert answer["deactivated"], answer
    elif field == "deletionPlan":
        assert answer["allowed"] is True and answer["token"], answer
        assert relation(answer["deleted"], "votes") > 0, answer
    elif field == "deleteUser":
        assert answer["deleted"] is True, answer
        assert relation(answer["plan"]["deleted"], "votes") > 0, answer
    elif field == "exportUserData":
        assert answer and answer["profile"]["username"], answer
    elif field == "anonymizeUser":
        assert answer["user"]["username"].startswith("deleted-user-"), answer
        # The receipt names the export the story took just before.
        assert answer["receipt"]["export"]["sha256"], answer
    else:
        assert answer, f"{field}: empty answer"


def dormant_dry_run():
    """`memberdesk deactivate-dormant --days 365 --dry-run` lists someone."""
    if not binary:
        print("readme story: no binary given, skipping the deactivate-dormant dry run")
        return
    run = subprocess.run(
        [binary, "deactivate-dormant", "--days", "365", "--dry-run"],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert run.returncode == 0, run.stderr
    assert "dave" in run.stdout, run.stdout


def user_managers(admin):
    """The README's `User managers` role: members yes, an Editor no."""
    manager = ok(
        'mutation { login(username: "mia-manager", password: "memberdesk-demo") { token } }'
    )["login"]["token"]
    bob = user_id(manager, "bob")
    off = ok('mutation($id: ID!) { deactivateUser(id: $id, input: { reason: "check" }) { user { isActive } } }',
             {"id": bob}, manager)["deactivateUser"]
    on = ok("mutation($id: ID!) { reactivateUser(id: $id, restoreAccess: true) { user { isActive } } }",
            {"id": bob}, manager)["reactivateUser"]
    assert off["user"]["isActive"] is False and on["user"]["isActive"] is True, (off, on)
    refused = post('mutation($id: ID!) { deactivateUser(id: $id, input: { reason: "check" }) { user { isActive } } }',
                   {"id": user_id(admin, "alice")}, manager)
    codes = [e["extensions"]["code"] for e in refused.get("errors", [])]
    assert codes == ["FORBIDDEN"], f"a user manager deactivated an Editor: {refused}"


def main():
    token, plan_token, seen = None, None, []
    for block in story_blocks():
        for op in operations(block):
            field = root_field(op)
            if field == "deactivateUsers":
                dormant_dry_run()
            data = ok(fill(op, token, plan_token), token=token)
            answer = data[field]
            check(field, answer)
            seen.append(field)
            if field == "login":
                token = answer["token"]
                user_managers(token)
            elif field == "deletionPlan":
                plan_token = answer["token"]
    promised = ["login", "deactivateUser", "reactivateUser", "deactivateUsers",
                "deletionPlan", "deleteUser", "exportUserData", "anonymizeUser"]
    missing = [f for f in promised if f not in seen]
    assert not missing, f"the README story no longer shows {missing}"
    print(f"readme story: {len(seen)} operations from README.md, each with the answer it promises: ok")


main()
