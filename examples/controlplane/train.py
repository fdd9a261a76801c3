"""A toy training job that checkpoints and resumes, as a real one should.

It counts to --steps, one step every --step-seconds, saving its progress to
$ARCHIPEL_CHECKPOINT_DIR/checkpoint.json after each step (atomically: write,
then rename). When the control plane restarts it elsewhere, it finds the
checkpoint and carries on from there.
"""

import argparse
import json
import os
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--step-seconds", type=float, default=0.5)
    args = parser.parse_args()

    folder = Path(os.environ.get("ARCHIPEL_CHECKPOINT_DIR", "."))
    folder.mkdir(parents=True, exist_ok=True)
    checkpoint = folder / "checkpoint.json"
    restart = os.environ.get("ARCHIPEL_RESTART_COUNT", "0")
    site = os.environ.get("ARCHIPEL_SITE", "?")
    step = json.loads(checkpoint.read_text())["step"] if checkpoint.exists() else 0
    print(f"attempt on {site}, restart {restart}: resuming from step {step}", flush=True)
    while step < args.steps:
        time.sleep(args.step_seconds)
        step += 1
        tmp = checkpoint.with_suffix(".tmp")
        tmp.write_text(json.dumps({"step": step, "site": site}))
        tmp.replace(checkpoint)
        print(f"step {step}/{args.steps} on {site}", flush=True)
    print("training done", flush=True)


if __name__ == "__main__":
    main()
