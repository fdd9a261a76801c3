"""The README's and docs' fenced blocks, as the doc tests read them (no I/O but reading files).

The convention (docs/contributing.md has the version for writers):

- Every fenced block names its language. ``console`` is a terminal session
  that is run; ``text`` is anything else that is not code (a synopsis, a
  diagram, sample output), and may not hold ``$`` prompts. ``sh``, ``bash``
  and ``shell`` are refused: write ``console`` with ``$`` prompts, so the
  block is run. (A ``markdown`` block may show a console block as an example.)
- In a ``console`` block, a line starting with ``$ `` is a command (a line
  ending with ``\\`` continues on the next); the lines under it, up to the
  next command, are its *key lines*. Each must appear in the command's output
  (stdout and stderr together), in that order; other lines may come between.
  Runs of spaces count as one space, ``...`` inside a line stands for any text
  (ids, times, prices that change) and a line that is only ``...`` marks
  output left out.
- A command must exit 0, unless its comment says ``# exits N``.
- ``cmd &`` starts a background job. ``kill %N`` stops the block's N-th
  background job (as a shell would).
- A marker, an HTML comment on the last non-blank line before the fence,
  changes what happens to the block:
  ``<!-- doctest: skip REASON -->`` does not run it (the reason is shown in
  the test report); ``<!-- doctest: servers PORT ... -->`` says that the
  block's background jobs are servers listening on these ports, in order: each
  is waited for before the next command, and all are stopped at the end.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

FENCE = re.compile(r"^( *)(`{3,}|~{3,})\s*([^\s`]*)")
MARKER = re.compile(r"^<!--\s*doctest:\s*(\S+)\s*(.*?)\s*-->$")
EXITS = re.compile(r"#.*\bexits (\d+)\b")
BACKGROUND = re.compile(r"^(?P<command>.*?)\s*(?<!&)&\s*(?P<comment>#.*)?$", re.DOTALL)
KILL_JOBS = re.compile(r"^kill(?:\s+%\d+)+\s*(?:#.*)?$")
JOB = re.compile(r"%(\d+)")
SHELLS = {"sh", "bash", "shell", "zsh", "shell-session", "shellsession"}
VERBS = {"skip", "servers"}


@dataclass(frozen=True)
class Command:
    """One ``$`` command of a console block, with what its output must show."""

    line: int  # where the ``$`` is, 1-based
    text: str  # as written, continuation lines included, without the prompt
    expected: tuple[str, ...]  # key lines, ``...`` lines left out
    status: int = 0
    background: bool = False
    kills: tuple[int, ...] = ()  # ``kill %N``: the jobs it stops, 1-based

    def to_run(self) -> str:
        """What the shell is given: a background job without its ``&``."""
        if not self.background:
            return self.text
        found = BACKGROUND.match(self.text)
        assert found is not None
        return found["command"]


@dataclass(frozen=True)
class Block:
    """A fenced block of a Markdown file."""

    path: str  # relative to the repository
    line: int  # the opening fence, 1-based
    language: str
    body: tuple[tuple[int, str], ...]  # (line number, text)
    marker: tuple[str, str] | None = None  # (verb, argument)
    marker_line: int = 0

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"

    @property
    def skip_reason(self) -> str | None:
        return self.marker[1] if self.marker and self.marker[0] == "skip" else None

    @property
    def ports(self) -> tuple[int, ...]:
        if not self.marker or self.marker[0] != "servers":
            return ()
        return tuple(int(p) for p in self.marker[1].split() if p.isdigit())


@dataclass
class _Open:
    path: str
    line: int
    fence: str
    language: str
    marker: tuple[str, str] | None
    marker_line: int
    indent: int  # a fence in a list item is indented; so are the lines it holds
    body: list[tuple[int, str]] = field(default_factory=list)


def doc_blocks(repo: Path) -> list[Block]:
    """Every fenced block of README.md and docs/*.md."""
    paths = [repo / "README.md", *sorted((repo / "docs").glob("*.md"))]
    return [b for path in paths for b in read_blocks(path, str(path.relative_to(repo)))]


def runnable_blocks(repo: Path) -> list[Block]:
    """The console blocks the doc tests run: well formed, no skip marker."""
    return [b for b in _console_blocks(repo) if b.skip_reason is None]


def skipped_blocks(repo: Path) -> list[Block]:
    return [b for b in _console_blocks(repo) if b.skip_reason is not None]


def _console_blocks(repo: Path) -> list[Block]:
    return [b for b in doc_blocks(repo) if b.language == "console" and not problems(b)]


def read_blocks(path: Path, name: str) -> list[Block]:
    """Every fenced block of a Markdown file, with the marker just before it."""
    return list(parse_blocks(path.read_text(encoding="utf-8").splitlines(), name))


def parse_blocks(lines: Iterable[str], name: str) -> Iterator[Block]:
    current: _Open | None = None
    last: tuple[int, str] = (0, "")  # the last non-blank line outside a block
    for number, text in enumerate(lines, start=1):
        if current is None:
            current, last = _outside(name, number, text, last)
        elif _closes(current.fence, text):
            yield Block(
                current.path, current.line, current.language, tuple(current.body),
                current.marker, current.marker_line,
            )  # fmt: skip
            current = None
        else:
            current.body.append((number, _dedent(text, current.indent)))


def _dedent(text: str, indent: int) -> str:
    return text[indent:] if not text[:indent].strip() else text.lstrip()


def _closes(fence: str, text: str) -> bool:
    stripped = text.strip()
    return len(stripped) >= len(fence) and set(stripped) == {fence[0]}


def _outside(
    name: str, number: int, text: str, last: tuple[int, str]
) -> tuple[_Open | None, tuple[int, str]]:
    fence = FENCE.match(text)
    if fence is None:
        return None, (number, text.strip()) if text.strip() else last
    marker = MARKER.match(last[1])
    verb = (marker[1], marker[2]) if marker else None
    opened = _Open(
        name, number, fence[2], fence[3].lower(), verb, last[0] if marker else 0, len(fence[1])
    )
    return opened, (0, "")


def commands(block: Block) -> list[Command]:
    """The ``$`` commands of a console block, each with its key lines."""
    found: list[Command] = []
    lines = iter(block.body)
    pending: tuple[int, list[str]] | None = None
    expected: list[str] = []
    for number, text in lines:
        if pending and pending[1][-1].endswith("\\"):
            pending[1].append(text)
            continue
        if text.startswith("$ "):
            if pending:
                found.append(_command(pending, expected))
            pending, expected = (number, [text[2:]]), []
        elif text.strip() and text.strip() != "...":
            expected.append(text)
    if pending:
        found.append(_command(pending, expected))
    return found


def _command(pending: tuple[int, list[str]], expected: list[str]) -> Command:
    line, parts = pending
    text = "\n".join(parts)
    status = EXITS.search(parts[-1])
    background = BACKGROUND.match(text) is not None
    kills = tuple(int(n) for n in JOB.findall(text)) if KILL_JOBS.match(text) else ()
    return Command(line, text, tuple(expected), int(status[1]) if status else 0, background, kills)


def problems(block: Block) -> list[str]:
    """Why the block breaks the convention, one message each (none: it is fine)."""
    if block.marker and block.marker[0] not in VERBS:
        return [f"unknown doctest marker {block.marker[0]!r}; use skip REASON or servers PORT ..."]
    if not block.language:
        return ["a fenced block needs a language: console for commands to run, text for the rest"]
    if block.language in SHELLS:
        return [f"write ```console with `$ ` prompts instead of ```{block.language}"]
    if block.language != "console":
        return _not_console(block)
    return _console(block)


def _not_console(block: Block) -> list[str]:
    if block.marker:
        return ["a doctest marker belongs before a ```console block only"]
    if block.language == "text" and any(text.startswith("$ ") for _, text in block.body):
        return ["commands with `$ ` prompts belong in a ```console block"]
    return []


def _console(block: Block) -> list[str]:
    first = next((text for _, text in block.body if text.strip()), "")
    if not first.startswith("$ "):
        return ["a console block starts with a `$ ` command"]
    if block.skip_reason is not None:
        return [] if block.skip_reason else ["doctest: skip needs a reason"]
    return _jobs(block, commands(block))


def _jobs(block: Block, found: list[Command]) -> list[str]:
    jobs = [c for c in found if c.background]
    errors = [f"line {c.line}: a background job shows no output" for c in jobs if c.expected]
    if block.marker and len(block.ports) != len(block.marker[1].split()):
        errors.append("doctest: servers takes port numbers only")
    if len(jobs) != len(block.ports):
        errors.append(
            f"{len(jobs)} background job(s) need as many ports in "
            f"<!-- doctest: servers PORT ... --> (it has {len(block.ports)})"
        )
    for c in found:
        if c.kills and max(c.kills) > len(jobs):
            errors.append(f"line {c.line}: kill %{max(c.kills)}: no such background job")
    return errors


def pattern(expected: str) -> re.Pattern[str]:
    """A key line as a regular expression over a normalised output line."""
    parts = [re.escape(part) for part in re.split(r" ?\.\.\. ?", normalise(expected))]
    return re.compile(".*?".join(parts))


def normalise(line: str) -> str:
    return " ".join(line.split())


def missing(expected: Iterable[str], output: str) -> list[str]:
    """The key lines not found in ``output``, in order (none: it matches)."""
    lines = [normalise(line) for line in output.splitlines()]
    at, absent = 0, []
    for key in (k for k in expected if normalise(k)):  # a blank key line says nothing
        wanted = pattern(key)
        hit = next((i for i in range(at, len(lines)) if wanted.fullmatch(lines[i])), None)
        if hit is None:
            absent.append(key)
        else:
            at = hit + 1
    return absent
