"""The openb pod and node lists: read as they are, refused with the file and line named."""

from __future__ import annotations

from pathlib import Path

import pytest

from archipel.core import InputError
from archipel.sim._openb import load_nodes, load_pods

POD_HEADER = (
    "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,"
    "creation_time,deletion_time,scheduled_time\n"
)
NODE_HEADER = "sn,cpu_milli,memory_mib,gpu,model\n"


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_pods_are_read_in_creation_order_with_the_never_scheduled_kept(tmp_path: Path) -> None:
    path = write(tmp_path, "pods.csv", POD_HEADER
                 + "b,6000,12288,1,460,,LS,Running,20,90,25\n"
                 + "a,0,100,0,0,,BE,Pending,10,50,\n")  # fmt: skip
    a, b = load_pods(path)
    assert (a.name, a.scheduled, a.deleted, a.num_gpu, a.shares_a_gpu) == ("a", None, 50, 0, False)
    assert (b.name, b.created, b.scheduled, b.gpu_milli, b.shares_a_gpu) == ("b", 20, 25, 460, True)


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("a,x,1,1,1000,,LS,Running,0,5,1", r"line 2: not an openb pod row"),
        ("a,1,1,1,1000,,LS,Running,0,5", r"line 2: not an openb pod row"),
        ("a,1,1,1,0,,LS,Running,0,5,1", "a share is 1 to 1000"),
        ("a,1,1,1,1001,,LS,Running,0,5,1", "a share is 1 to 1000"),
        ("a,-1,1,0,0,,LS,Running,0,5,1", "negative amount"),
        ("a,1,1,0,0,,LS,Running,10,50,5", "scheduled before its creation"),
        ("a,1,1,0,0,,LS,Running,10,50,60", "after its deletion"),
        ("a,1,1,0,0,,LS,Pending,10,5,", "deleted before its creation"),
    ],
    ids=[
        "not a number",
        "a column short",
        "no share",
        "more than a GPU",
        "negative",
        "scheduled too early",
        "scheduled too late",
        "deleted too early",
    ],
)
def test_a_bad_pod_row_is_refused(tmp_path: Path, row: str, message: str) -> None:
    path = write(tmp_path, "pods.csv", POD_HEADER + row + "\n")
    with pytest.raises(InputError, match=message) as caught:
        load_pods(path)
    assert str(path) in str(caught.value)


def test_nodes_are_read_in_file_order(tmp_path: Path) -> None:
    path = write(tmp_path, "nodes.csv", NODE_HEADER + "n1,96000,393216,8,G2\nn0,32000,262144,0,\n")
    assert [(n.name, n.gpus, n.model) for n in load_nodes(path)] == [("n1", 8, "G2"), ("n0", 0, "")]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (NODE_HEADER, "no node"),
        (NODE_HEADER + "n,1,1,x,G\n", "line 2: not an openb node row"),
        (NODE_HEADER + "n,1,-1,0,\n", "negative capacity"),
        ("sn,cpu\nn,1\n", "the columns are sn, cpu_milli"),
    ],
    ids=["empty", "not a number", "negative", "other columns"],
)
def test_a_bad_node_list_is_refused(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        load_nodes(write(tmp_path, "nodes.csv", text))


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read the pod list"):
        load_pods(tmp_path / "none.csv")
