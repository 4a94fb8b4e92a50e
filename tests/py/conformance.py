"""Run scim2-tester's check_server() against one or more SCIM base URLs.

Prints one JSON line per URL: {"url", "total", "success", "skipped", "failed", "failures": [...]}
so the Rust integration tests can compare a direct run with a run through scimitar.
Usage: conformance.py URL [URL...]   (optionally SCIM_TOKEN=... for a bearer token and
SCIM_CA=FILE to trust a test CA for https:// URLs)
"""

import json
import os
import sys

import httpx2
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_tester import check_server
from scim2_tester.utils import Status


def run(url: str) -> dict:
    headers = {}
    token = os.environ.get("SCIM_TOKEN")
    if token:
        headers["Authorization"] = f"Bearer {token}"
    verify = os.environ.get("SCIM_CA") or True
    http = httpx2.Client(base_url=url, headers=headers, timeout=30, verify=verify)
    client = SyncSCIMClient(http)
    client.discover()
    results = check_server(client)
    failed = [r for r in results if r.status not in (Status.SUCCESS, Status.SKIPPED)]
    return {
        "url": url,
        "total": len(results),
        "success": sum(1 for r in results if r.status == Status.SUCCESS),
        "skipped": sum(1 for r in results if r.status == Status.SKIPPED),
        "failed": len(failed),
        "failures": [f"{r.title}: {r.reason}" for r in failed][:20],
    }


if __name__ == "__main__":
    for u in sys.argv[1:]:
        print(json.dumps(run(u)), flush=True)
