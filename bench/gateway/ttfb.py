#!/usr/bin/env python3
"""Time to first streamed byte, through a gateway and straight to the upstream (stdlib only).

wrk times streams to their last byte; this probe sends streaming chat requests one
at a time over one keep-alive connection per target and times, for each, the
first body chunk that carries an SSE `data:` line (TTFB) and the end of the
chunked body. Targets are interleaved request by request so that noise hits
them alike. Prints one markdown table; the "added" columns compare with the
first target. Loopback only.

  python3 ttfb.py --n 2000 direct=http://127.0.0.1:9001/v1/chat/completions \\
      archipel=http://127.0.0.1:4300/v1/chat/completions@sk-bench-1234
"""

import argparse
import json
import socket
import statistics
import time
import urllib.parse

BODY = json.dumps(
    {
        "model": "fake-model",
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_tokens": 16,
        "temperature": 0,
        "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "Say hello in one short sentence."},
        ],
    }
).encode()


class Target:
    def __init__(self, spec):
        self.name, rest = spec.split("=", 1)
        url, _, self.key = rest.partition("@")
        u = urllib.parse.urlparse(url)
        if u.hostname not in ("127.0.0.1", "localhost"):
            raise SystemExit(f"loopback only: {url}")
        self.addr = (u.hostname, u.port or 80)
        auth = f"Authorization: Bearer {self.key}\r\n" if self.key else ""
        self.request = (
            f"POST {u.path} HTTP/1.1\r\nHost: {u.netloc}\r\n"
            f"Content-Type: application/json\r\n{auth}"
            f"Content-Length: {len(BODY)}\r\n\r\n"
        ).encode() + BODY
        self.sock = None
        self.ttfb, self.total = [], []

    def connect(self):
        self.sock = socket.create_connection(self.addr)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def once(self, record):
        t0 = time.perf_counter()
        self.sock.sendall(self.request)
        buf, first = b"", None
        while True:
            data = self.sock.recv(65536)
            if not data:
                raise RuntimeError(f"{self.name}: connection closed")
            buf += data
            if first is None and b"data:" in buf:
                first = time.perf_counter()
            if buf.endswith(b"0\r\n\r\n") and b"[DONE]" in buf:
                break
        t1 = time.perf_counter()
        if not buf.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(f"{self.name}: {buf[:200]!r}")
        if record:
            self.ttfb.append((first - t0) * 1000)
            self.total.append((t1 - t0) * 1000)


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))]


def main():
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("targets", nargs="+", help="name=url[@bearer-key]")
    a = ap.parse_args()
    ts = [Target(s) for s in a.targets]
    for t in ts:
        t.connect()
    for i in range(a.warmup + a.n):
        for t in ts:
            t.once(i >= a.warmup)
    base = ts[0]
    print(
        "| target | n | TTFB p50 ms | TTFB p99 ms | added TTFB p50 ms "
        "| last byte p50 ms | added last byte p50 ms |"
    )
    print("|---|---|---|---|---|---|---|")
    for t in ts:
        m, mb = statistics.median(t.ttfb), statistics.median(base.ttfb)
        e, eb = statistics.median(t.total), statistics.median(base.total)
        add = "-" if t is base else f"{m - mb:.3f}"
        adde = "-" if t is base else f"{e - eb:.3f}"
        p99 = pct(t.ttfb, 99)
        print(f"| {t.name} | {len(t.ttfb)} | {m:.3f} | {p99:.3f} | {add} | {e:.3f} | {adde} |")


if __name__ == "__main__":
    main()
