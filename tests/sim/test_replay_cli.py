"""``archipel simulate replay``: the figures of a trace folder, the same for the same seed,
the plot on request, and bad input refused with what to change."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from archipel.cli._app import app

POD_HEADER = (
    "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,"
    "creation_time,deletion_time,scheduled_time\n"
)


@pytest.fixture
def trace_dir(tmp_path: Path) -> Path:
    """40 one-GPU pods on 4 nodes, bound 0, 1 or 2 s after creation or after a 30 s retry,
    and 4 never scheduled."""
    rows = []
    for i in range(40):
        created = 100 * i
        delay = (i % 3) + (30 if i % 5 == 0 else 0)
        scheduled = "" if i % 10 == 7 else str(created + delay)
        rows.append(f"p{i:02},4000,8192,1,{250 * (1 + i % 4)},,LS,Running,{created},"
                    f"{created + 500},{scheduled}\n")  # fmt: skip
    (tmp_path / "openb_pod_list_test.csv").write_text(POD_HEADER + "".join(rows))
    (tmp_path / "openb_node_list_test.csv").write_text(
        "sn,cpu_milli,memory_mib,gpu,model\n" + "".join(f"n{i},32000,65536,2,G\n" for i in range(4))
    )
    return tmp_path


def test_the_json_is_the_same_for_the_same_seed(trace_dir: Path) -> None:
    args = ["simulate", "replay", "--trace-dir", str(trace_dir), "--seed", "5", "--json"]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    assert CliRunner().invoke(app, args).output == first.output
    doc = json.loads(first.output)
    assert doc["trace"]["pods"] == 40
    assert doc["model"]["fitted_on_pods"] == 20
    assert doc["judged"]["pods"] == 20
    assert doc["judged"]["scheduled"]["observed"] == 18
    assert doc["replay"]["misses"]["no-fit"] == 0
    assert set(doc["judged"]) >= {"wasserstein1_s", "ks", "never_scheduled", "delay_s"}


def test_the_table_and_the_plot(trace_dir: Path, tmp_path: Path) -> None:
    qq = tmp_path / "qq.svg"
    done = CliRunner().invoke(app, ["simulate", "replay", "--trace-dir", str(trace_dir),
                                    "--qq", str(qq)])  # fmt: skip
    assert done.exit_code == 0, done.output
    assert "judged (out of sample)" in done.output
    assert "capacity alone (judged)" in done.output
    svg = qq.read_text()
    assert svg.startswith("<?xml") and 'xmlns="http://www.w3.org/2000/svg"' in svg
    assert "judged half (out of sample)" in svg


@pytest.mark.parametrize(
    ("files", "extra", "message"),
    [
        ({"openb_node_list_x.csv": "sn,cpu_milli,memory_mib,gpu,model\nn,1,1,0,\n"}, [],
         "exactly one openb_pod_list"),
        ({"openb_pod_list_a.csv": POD_HEADER, "openb_pod_list_b.csv": POD_HEADER}, [],
         r"exactly one openb_pod_list\*.csv \(found 2\)"),
        ({"openb_pod_list_a.csv": POD_HEADER + "a,1,1,0,0,,LS,Pending,0,5,\n",
          "openb_node_list_x.csv": "sn,cpu_milli,memory_mib,gpu,model\nn,1,1,0,\n"}, [],
         "at least two pods"),
        ({"openb_pod_list_a.csv": POD_HEADER, "openb_node_list_x.csv": "sn\n"},
         ["--qq", "/no/such/dir/qq.svg"], "no such directory"),
    ],
    ids=["no pod list", "two pod lists", "one pod", "plot folder missing"],
)  # fmt: skip
def test_bad_input_exits_2_and_says_why(
    tmp_path: Path, files: dict[str, str], extra: list[str], message: str
) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    done = CliRunner().invoke(app, ["simulate", "replay", "--trace-dir", str(tmp_path), *extra])
    assert done.exit_code == 2
    assert re.search(message, done.output), done.output


def test_a_missing_folder_is_named(tmp_path: Path) -> None:
    done = CliRunner().invoke(app, ["simulate", "replay", "--trace-dir", str(tmp_path / "x")])
    assert done.exit_code == 2
    assert "no such directory" in done.output
