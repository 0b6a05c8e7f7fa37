"""scim2-tester's conformance checks (discovery, CRUD, PATCH, query
attributes) against a real memberdesk, as an identity provider's engineer
would run them. Every check must pass; a check skipped by the tester itself
is listed with its reason, and README ("Provisioning with SCIM") says why.

Usage: scim_conformance.py BASE_URL TOKEN
(BASE_URL like http://127.0.0.1:8000/scim/v2; the token from
`memberdesk scim-token create`, the server run with
MEMBERDESK_SCIM_DELETE=anonymize so that a deleted user is gone, as the
tester expects.)
"""

import sys

from httpx2 import Client
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_tester import Status, check_server


def main() -> int:
    base, token = sys.argv[1], sys.argv[2]
    http = Client(base_url=base, headers={"Authorization": f"Bearer {token}"})
    client = SyncSCIMClient(http)
    results = check_server(client)
    counts: dict[str, int] = {}
    for result in results:
        status = result.status.name
        counts[status] = counts.get(status, 0) + 1
        if result.status != Status.SUCCESS:
            print(f"{status}: {result.resource_type or ''} {result.title}: {result.reason}")
    passed = counts.get("SUCCESS", 0)
    failed = sum(n for s, n in counts.items() if s in ("ERROR", "CRITICAL"))
    skipped = len(results) - passed - failed
    print(f"scim2-tester: {passed} checks passed, {failed} failed, {skipped} skipped")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
