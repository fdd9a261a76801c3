"""The doc-test convention itself: how blocks are read, judged and matched, and that a
drifted block fails with its file and line."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.profiles import examples

from .blocks import Block, commands, missing, parse_blocks, problems
from .test_docs import check


def block(markdown: str) -> Block:
    (found,) = parse_blocks(markdown.strip("\n").splitlines(), "doc.md")
    return found


def test_a_block_knows_its_line_language_and_marker() -> None:
    found = block(
        """
Some prose.

<!-- doctest: servers 9101 8080 -->

```console
$ true
```
"""
    )
    assert (found.where, found.language, found.ports) == ("doc.md:5", "console", (9101, 8080))
    assert found.skip_reason is None


def test_a_marker_counts_only_on_the_last_line_before_the_fence() -> None:
    found = block(
        """
<!-- doctest: skip not this block's -->
Prose in between.
```console
$ true
```
"""
    )
    assert found.marker is None


def test_a_longer_fence_holds_a_shorter_one() -> None:
    found = block(
        """
````text
```console
$ not a command here
```
````
"""
    )
    assert found.language == "text"
    assert [n for n, _ in found.body] == [2, 3, 4]


def test_commands_their_key_lines_status_and_jobs() -> None:
    found = commands(
        block(
            """
```console
$ server --port 9101 &   # a comment
$ curl -s localhost:9101 \\
     -d '{}'
first key line

...
second key line
$ false     # exits 1: it always fails
$ kill %1
```
"""
        )
    )
    assert [(c.line, c.background, c.status, c.kills) for c in found] == [
        (2, True, 0, ()),
        (3, False, 0, ()),
        (9, False, 1, ()),
        (10, False, 0, (1,)),
    ]
    assert found[0].to_run() == "server --port 9101"
    assert found[1].text == "curl -s localhost:9101 \\\n     -d '{}'"
    assert found[1].expected == ("first key line", "second key line")


def test_a_fence_in_a_list_item_is_read_without_its_indent() -> None:
    found = block(
        """
- An item:

  <!-- doctest: skip an example -->
  ```console
  $ true
    indented output
  ```
"""
    )
    assert (found.language, found.skip_reason) == ("console", "an example")
    assert found.body == ((5, "$ true"), (6, "  indented output"))


@pytest.mark.parametrize(
    ("markdown", "problem"),
    [
        pytest.param("```console\n$ ls\n```", None, id="a console block"),
        pytest.param("```text\nusage: x [--y]\n```", None, id="a text block"),
        pytest.param("```yaml\na: 1\n```", None, id="a yaml block"),
        pytest.param("```\nls\n```", "needs a language", id="no language"),
        pytest.param("```bash\nls\n```", "write ```console", id="bash"),
        pytest.param("```sh\nls\n```", "write ```console", id="sh"),
        pytest.param("```text\n$ ls\n```", "belong in a ```console block", id="prompts in text"),
        pytest.param("```markdown\n```console\n$ ls\n```", None, id="an example in markdown"),
        pytest.param("```console\nls\n```", "starts with a `$ ` command", id="no prompt"),
        pytest.param(
            "<!-- doctest: skip -->\n```console\n$ ls\n```", "needs a reason", id="skip, no reason"
        ),
        pytest.param(
            "<!-- doctest: skip needs a GPU -->\n```console\n$ nvidia-smi\n```",
            None,
            id="skip with a reason",
        ),
        pytest.param(
            "<!-- doctest: run -->\n```console\n$ ls\n```", "unknown doctest marker", id="unknown"
        ),
        pytest.param(
            "<!-- doctest: skip why -->\n```yaml\na: 1\n```", "before a ```console", id="misplaced"
        ),
        pytest.param("```console\n$ srv &\n```", "need as many ports", id="job, no port"),
        pytest.param(
            "<!-- doctest: servers 80 81 -->\n```console\n$ srv &\n```",
            "need as many ports",
            id="more ports than jobs",
        ),
        pytest.param(
            "<!-- doctest: servers 80 -->\n```console\n$ srv &\nlistening\n```",
            "shows no output",
            id="job with output",
        ),
        pytest.param(
            "<!-- doctest: servers eighty -->\n```console\n$ srv &\n```",
            "port numbers only",
            id="not a port",
        ),
        pytest.param(
            "<!-- doctest: servers 80 -->\n```console\n$ srv &\n$ kill %2\n```",
            "kill %2: no such background job",
            id="kill an unknown job",
        ),
    ],
)
def test_what_breaks_the_convention(markdown: str, problem: str | None) -> None:
    found = problems(block(markdown))
    if problem is None:
        assert found == []
    else:
        assert len(found) >= 1 and problem in found[0], found


@pytest.mark.parametrize(
    ("keys", "output", "absent"),
    [
        pytest.param(["b", "d"], "a\nb\nc\nd\n", [], id="in order, others between"),
        pytest.param(["d", "b"], "a\nb\nc\nd\n", ["b"], id="out of order"),
        pytest.param(["x  y"], "  x y  \n", [], id="runs of spaces are one"),
        pytest.param(["id r-..."], "id r-3d10d38dd689\n", [], id="a wildcard in a line"),
        pytest.param(["from ... via"], "from paris via\n", [], id="a wildcard word"),
        pytest.param(["Act ..."], "Act \n", [], id="a wildcard at the end, nothing left"),
        pytest.param(["b"], "abc\n", ["b"], id="a whole line, not a part"),
        pytest.param(["a.c"], "abc\n", ["a.c"], id="a dot is a dot"),
        pytest.param(["b", "b"], "b\n", ["b"], id="each key line needs a line of its own"),
        pytest.param(["x"], "", ["x"], id="no output"),
    ],
)
def test_key_lines(keys: list[str], output: str, absent: list[str]) -> None:
    assert missing(keys, output) == absent


lines = st.lists(
    st.text(st.characters(exclude_characters="\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"))
)


@given(lines, st.data())
@settings(max_examples=examples(200))
def test_lines_taken_from_the_output_in_order_always_match(
    output: list[str], data: st.DataObject
) -> None:
    keep = data.draw(st.lists(st.booleans(), min_size=len(output), max_size=len(output)))
    keys = [line for line, kept in zip(output, keep, strict=True) if kept]
    assert missing(keys, "\n".join(output)) == []


@given(lines, st.text(alphabet="abcxyz ", min_size=1))
@settings(max_examples=examples(200))
def test_a_line_the_output_lacks_is_missing(output: list[str], extra: str) -> None:
    key = "@" + extra  # no output line is normalised to it unless it is there
    expected = [] if key.strip() in {" ".join(line.split()) for line in output} else [key]
    assert missing([key], "\n".join(output)) == expected


def run_block(markdown: str, tmp_path: Path) -> list[str]:
    found = block(markdown)
    assert problems(found) == []
    return check(found, tmp_path)


def test_a_block_that_matches_passes(tmp_path: Path) -> None:
    markdown = """
<!-- doctest: servers 8765 -->
```console
$ python -m http.server 8765 --bind 127.0.0.1 &
$ curl -s -o /dev/null -w '%{http_code}\\n' http://127.0.0.1:8765/README.md
200
$ kill %1
$ curl -s http://127.0.0.1:8765/     # exits 7: nothing listens any more
$ ls README.md docs/plan.md
README.md
docs/plan.md
$ echo "$HOME" | grep -c /home
1
```
"""
    assert run_block(markdown, tmp_path) == []


@pytest.mark.parametrize(
    ("markdown", "says"),
    [
        pytest.param(
            "```console\n$ echo hello\nhello\ngoodbye\n```",
            ["doc.md:2: $ echo hello", "found    hello", "MISSING  goodbye", "| hello"],
            id="a key line the output lacks",
        ),
        pytest.param(
            "```console\n$ false\n$ echo never\n```",
            ["doc.md:2: $ false", "exit status 1, expected 0", "not run after that: 3"],
            id="an exit status",
        ),
        pytest.param(
            "```console\n$ true     # exits 3\n```",
            ["exit status 0, expected 3"],
            id="an expected failure that succeeds",
        ),
    ],
)
def test_a_drifted_block_fails_naming_its_line(
    markdown: str, says: list[str], tmp_path: Path
) -> None:
    report = "\n".join(run_block(markdown, tmp_path))
    for words in says:
        assert words in report, report
