"""Talk to the example gateway with the official `openai` client, as both tenants.

    python examples/gateway/chat.py [--base-url http://127.0.0.1:8080/v1]

For each tenant of examples/gateway/gateway.yaml it sends one chat completion
and one streamed chat completion, and prints who answered. The exit status is
1 if a request of the `lab` tenant (class `public`, allowed everywhere) failed:
with one of the two replicas down, it should still be 0. The `clinic` tenant
(class `health`) may only use the OVHcloud replica, so when that one is down
its requests fail, and that is the policy working.
"""

from __future__ import annotations

import argparse
import sys

import openai
from openai import OpenAI

TENANTS = {"lab": "sk-demo-public", "clinic": "sk-demo-health"}
MODEL = "llama-3.1-8b"
MESSAGES = [{"role": "user", "content": "Hello?"}]


def ask(client: OpenAI, stream: bool) -> str:
    if not stream:
        raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=MESSAGES)
        answer = raw.parse().choices[0].message.content or ""
        return f"{answer!r} via {raw.headers.get('x-archipel-replica')}"
    parts = []
    for chunk in client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True):
        if chunk.choices and chunk.choices[0].delta.content:
            parts.append(chunk.choices[0].delta.content)
    return f"{''.join(parts)!r} (streamed in {len(parts)} chunks)"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", default="http://127.0.0.1:8080/v1")
    args = parser.parse_args()
    lab_failed = False
    for tenant, key in TENANTS.items():
        with OpenAI(api_key=key, base_url=args.base_url, max_retries=0, timeout=30) as client:
            for stream in (False, True):
                label = f"{tenant:<7} {'streaming' if stream else 'non-streaming':<14}"
                try:
                    print(f"{label} {ask(client, stream)}")
                except openai.APIStatusError as exc:
                    error = exc.body if isinstance(exc.body, dict) else {}
                    message = error.get("message", exc.message)
                    print(f"{label} refused: {exc.status_code} {message}")
                    lab_failed |= tenant == "lab"
                except openai.APIConnectionError as exc:
                    print(f"{label} cannot reach the gateway at {args.base_url}: {exc}")
                    return 2
    return 1 if lab_failed else 0


if __name__ == "__main__":
    sys.exit(main())
