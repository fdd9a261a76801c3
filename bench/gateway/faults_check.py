#!/usr/bin/env python3
"""Data-class check for bench/gateway/faults.sh (stdlib only).

For every run in a fault result folder: how many requests the out-of-class
replica C (aws/us-east-1, port 9003) received (its arrival log), and which
replicas answered according to the gateway's own usage records. The bench
tenant's class (`health`) allows only fake-model/ovh-gra and fake-model/scw-par.
"""

import argparse
import collections
import glob
import json
import os
import sys

ALLOWED = {"fake-model/ovh-gra", "fake-model/scw-par"}


def lines(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(ln) for ln in f if ln.strip()]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="the result folder of a faults.sh run")
    out = parser.parse_args().out
    print(
        "| run | C (US, out of class) requests | usage records | by replica | by status "
        "| records outside the class | max attempts |"
    )
    print("|---|---|---|---|---|---|---|")
    bad_total = 0
    for usage in sorted(glob.glob(os.path.join(out, "usage-*.jsonl"))):
        tag = os.path.basename(usage)[len("usage-") : -len(".jsonl")]
        c_hits = len(lines(os.path.join(out, f"C-{tag}.arrivals")))
        recs = lines(usage)
        by_replica = collections.Counter(r["replica"] for r in recs)
        by_status = collections.Counter(r["status"] for r in recs)
        outside = sum(n for rid, n in by_replica.items() if rid is not None and rid not in ALLOWED)
        bad_total += outside + c_hits
        print(
            f"| {tag} | {c_hits} | {len(recs)} | "
            + ", ".join(f"{k}: {v}" for k, v in sorted(by_replica.items(), key=str))
            + " | "
            + ", ".join(f"{k}: {v}" for k, v in sorted(by_status.items()))
            + f" | {outside} | "
            + str(max((r["attempts"] for r in recs), default=0))
            + " |"
        )
    print()
    print("requests outside the data class:", bad_total)
    return 1 if bad_total else 0


if __name__ == "__main__":
    sys.exit(main())
