"""Count the Python bytecodes a gateway executes, per function, while it is under load.

A count that does not depend on how busy the machine is: on a shared machine, CPU time
per request moves with the neighbours' load, the number of bytecodes a request runs does
not (C code, orjson or uvloop, is not counted: a bytecode that calls it counts once).

    python bench/gateway/bytecodes.py OUT.tsv archipel gateway --config archipel.yaml
    python bench/gateway/bytecodes.py OUT.tsv bench/gateway/passthrough.py --port 4310 ...

runs the command (``archipel`` or a script) in this process. SIGUSR1 starts counting,
SIGUSR2 stops and writes ``count<TAB>file:line<TAB>function`` lines to OUT.tsv, most first.
Tracing every bytecode makes the process some 30 times slower: count a few hundred requests
at low concurrency (bytecodes.sh does), and never measure time with it.
"""

from __future__ import annotations

import argparse
import collections
import runpy
import signal
import sys
import threading
from types import CodeType, FrameType
from typing import Any

counts: collections.Counter[CodeType] = collections.Counter()


def _local(frame: FrameType, event: str, arg: Any) -> Any:
    if event == "opcode":
        counts[frame.f_code] += 1
    return _local


def _global(frame: FrameType, event: str, arg: Any) -> Any:
    frame.f_trace_opcodes = True
    return _local


def _start(signum: int, frame: FrameType | None) -> None:
    counts.clear()
    sys.settrace(_global)
    threading.settrace(_global)
    while frame is not None:  # the frames already running (the event loop's) count too
        frame.f_trace = _local
        frame.f_trace_opcodes = True
        frame = frame.f_back


def _stop(path: str) -> None:
    sys.settrace(None)
    threading.settrace(None)
    with open(path, "w") as out:
        for code, n in counts.most_common():
            out.write(f"{n}\t{code.co_filename}:{code.co_firstlineno}\t{code.co_qualname}\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="where SIGUSR2 writes the counts (TSV)")
    parser.add_argument("target", help="`archipel` or a Python script")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="the target's arguments")
    opts = parser.parse_args()
    signal.signal(signal.SIGUSR1, _start)
    signal.signal(signal.SIGUSR2, lambda signum, frame: _stop(opts.out))
    target = opts.target
    sys.argv = [target, *opts.args]
    if target == "archipel":
        from archipel.cli import main as cli

        cli()
        return
    runpy.run_path(target, run_name="__main__")


if __name__ == "__main__":
    main()
