"""Study 1's inputs and command: traces checked with the file named, prices from the
catalog unless given, the same output for the same inputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from archipel.cli._app import app
from archipel.core import InputError
from archipel.sim import load_trace


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "zone.json"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not json", "not JSON"),
        ("[]", "a trace is a JSON object"),
        ('{"data": [1]}', "metadata.gap_seconds is missing"),
        ('{"metadata": {"gap_seconds": 0}, "data": [1]}', "positive whole number"),
        ('{"metadata": {"gap_seconds": 1.5}, "data": [1]}', "positive whole number"),
        ('{"metadata": {"gap_seconds": 60}, "data": []}', "non-empty list"),
        ('{"metadata": {"gap_seconds": 60}, "data": [1, -1]}', r"data\[1\] is -1"),
        ('{"metadata": {"gap_seconds": 60}, "data": [1, true]}', r"data\[1\] is True"),
        ('{"metadata": {"gap_seconds": 60}, "data": [0.5]}', r"data\[0\] is 0.5"),
    ],
    ids=[
        "not json",
        "a list",
        "no gap",
        "zero gap",
        "fractional gap",
        "no data",
        "negative count",
        "boolean count",
        "fractional count",
    ],
)
def test_a_bad_trace_is_refused_with_its_file_named(
    tmp_path: Path, text: str, message: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(InputError, match=message) as err:
        load_trace(path)
    assert str(path) in str(err.value)


def test_a_trace_reads_counts_as_spot_or_not(tmp_path: Path) -> None:
    trace = load_trace(write(tmp_path, '{"metadata": {"gap_seconds": 60}, "data": [0, 2, 1, 0]}'))
    assert (trace.name, trace.gap_seconds, trace.available.tolist()) == (
        "zone",
        60,
        [False, True, True, False],
    )


def test_the_command_gives_every_policy_and_the_same_json_twice(tmp_path: Path) -> None:
    path = write(
        tmp_path, json.dumps({"metadata": {"gap_seconds": 3600}, "data": [1, 0, 0, 1, 1, 1]})
    )
    args = [
        "simulate",
        "spot",
        "--trace",
        str(path),
        "--job-hours",
        "3",
        "--deadline-hours",
        "5",
        "--changeover-hours",
        "1",
        "--spot-price",
        "1",
        "--on-demand-price",
        "3",
        "--json",
    ]
    first = CliRunner().invoke(app, args)
    second = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    assert first.output == second.output
    doc = json.loads(first.output)
    rows = {p["policy"]: p for p in doc["policies"]}
    assert list(rows) == ["on-demand", "greedy", "uniform-progress", "optimal", "archipel"]
    assert rows["on-demand"]["cost"] == "9.000000000"
    assert all(p["deadline_met"] for p in doc["policies"])
    assert doc["prices"]["source"] == "--spot-price and --on-demand-price"


def test_without_prices_the_catalog_gives_them(tmp_path: Path) -> None:
    path = write(tmp_path, json.dumps({"metadata": {"gap_seconds": 3600}, "data": [1] * 4}))
    done = CliRunner().invoke(
        app,
        [
            "simulate",
            "spot",
            "--trace",
            str(path),
            "--job-hours",
            "2",
            "--deadline-hours",
            "3",
            "--policy",
            "on-demand",
            "--json",
        ],
    )
    assert done.exit_code == 0, done.output
    prices = json.loads(done.output)["prices"]
    assert prices["source"].startswith("catalog offer ")
    assert (prices["on_demand"], prices["currency"]) == ("3.06", "USD")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--trace", "missing.json", "--job-hours", "1", "--deadline-hours", "3"], "missing.json"),
        (["--job-hours", "9", "--deadline-hours", "3"], "no policy can meet it"),
        (["--job-hours", "1", "--deadline-hours", "3", "--spot-price", "x"], "not a decimal"),
    ],
    ids=["a trace file that is not there", "impossible deadline", "a price that is not a number"],
)
def test_bad_input_exits_2_with_what_to_change(
    tmp_path: Path, extra: list[str], message: str
) -> None:
    path = write(tmp_path, json.dumps({"metadata": {"gap_seconds": 3600}, "data": [1] * 4}))
    done = CliRunner().invoke(app, ["simulate", "spot", "--trace", str(path), *extra])
    assert done.exit_code == 2
    assert message in done.output
