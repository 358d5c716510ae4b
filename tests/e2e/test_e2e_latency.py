"""Insert -> subscriber latency on loopback (measured and printed, not asserted): one node
process, a subscriber client and a writer client, ~300 paced inserts. The numbers go to
stdout (visible with -s) and to tests/e2e/.last_latency.txt."""

from __future__ import annotations

import datetime
from pathlib import Path

from conftest import NodeRunner

OUT = Path(__file__).resolve().parent / ".last_latency.txt"


def test_insert_to_subscriber_latency(server_url: str, node: NodeRunner) -> None:
    r = node.run("latency.mjs", server_url, timeout=120, count=300, paceMs=5, warmup=20)
    sub = r["insertToSubscriberMs"]
    rtt = r["mutationRoundTripMs"]
    lines = [
        f"e2e latency ({datetime.datetime.now().isoformat(timespec='seconds')}, loopback, "
        f"{sub['count']} inserts paced {r['paceMs']} ms apart, npm ConvexClient)",
        f"  insert -> other client's onUpdate: p50 {sub['p50']} ms  p90 {sub['p90']} ms  "
        f"p99 {sub['p99']} ms  max {sub['max']} ms  mean {sub['mean']} ms",
        f"  mutation round trip (resolved):    p50 {rtt['p50']} ms  p90 {rtt['p90']} ms  "
        f"p99 {rtt['p99']} ms  max {rtt['max']} ms  mean {rtt['mean']} ms",
    ]
    text = "\n".join(lines)
    print("\n" + text)
    OUT.write_text(text + "\n")
    assert sub["count"] == 300
