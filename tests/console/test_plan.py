"""The plan form answers what ``archipel plan`` answers: the same ranked placements and the
same rejection counts, for the same request (the command, run as a user runs it, is the
oracle)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from archipel.console import PREFIX

from .conftest import SignIn

ARCHIPEL = str(Path(sys.executable).with_name("archipel"))


def cli_plan(tmp_path: Path, *flags: str) -> dict[str, Any]:
    """``archipel plan FLAGS --json``'s one plan, with a data directory of its own (so the
    shipped catalog, as the server under test has)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARCHIPEL_")}
    done = subprocess.run(
        [ARCHIPEL, "plan", *flags, "--json"],
        env={**env, "ARCHIPEL_DATA_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode in (0, 1), done.stderr
    plan: dict[str, Any] = json.loads(done.stdout)["plans"][0]
    return plan


def page_rows(html: str, table: str) -> list[list[str]]:
    body = html.split(f'class="{table}"')[1].split("</table>")[0]
    return [
        [re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<td>(.*?)</td>", row, re.S)]
        for row in re.findall(r"<tr[^>]*>(.*?)</tr>", body.split("<tbody>")[1], re.S)
    ]


@pytest.mark.parametrize(
    ("query", "flags"),
    [
        pytest.param(
            "gpus=H100:8&class=personal&countries=FR,DE&top=5",
            ["--gpus", "H100:8", "--data-class", "personal", "--countries", "FR,DE", "--top", "5"],
            id="H100:8, personal data, France or Germany",
        ),
        pytest.param(
            "gpus=L4:1&class=public&spot=true&top=8",
            ["--gpus", "L4:1", "--data-class", "public", "--spot", "--top", "8"],
            id="L4:1, public, spot tolerated",
        ),
        pytest.param(
            "gpus=H100:8&class=sovereign&countries=US",
            ["--gpus", "H100:8", "--data-class", "sovereign", "--countries", "US"],
            id="nothing fits",
        ),
    ],
)
def test_the_plan_form_answers_what_the_command_answers(
    sign_in: SignIn, tmp_path: Path, query: str, flags: list[str]
) -> None:
    html = sign_in("acme", "viewer").get(f"{PREFIX}/plan?{query}").text
    expected = cli_plan(tmp_path, *flags)
    if expected["placements"]:
        shown = [(int(r[0]), r[1], r[2], r[4], r[9]) for r in page_rows(html, "placements")]
        assert shown == [
            (
                p["rank"],
                p["provider"],
                p["region"] or "-",
                p["instance_type"],
                "spot" if p["spot"] else "on-demand",
            )
            for p in expected["placements"]
        ]
    else:
        assert 'id="no-placement"' in html
    rejected = [
        (r[0].split(" ")[0], r[1].replace(",", ""), r[2]) for r in page_rows(html, "rejected")
    ]
    assert rejected == [(j["reason"], str(j["count"]), j["plugin"]) for j in expected["rejections"]]


def test_without_accelerators_the_form_is_shown_alone(sign_in: SignIn) -> None:
    r = sign_in().get(f"{PREFIX}/plan")
    assert r.status_code == 200
    assert 'name="gpus"' in r.text and "placements-title" not in r.text


@pytest.mark.parametrize(
    ("query", "says"),
    [
        pytest.param("gpus=NOPE:1", "NOPE", id="unknown accelerator"),
        pytest.param("gpus=H100:8&class=secretive", "secretive", id="unknown data class"),
        pytest.param("gpus=H100:8&countries=Narnia", "Narnia", id="unknown country"),
    ],
)
def test_a_bad_plan_form_says_what_to_change(sign_in: SignIn, query: str, says: str) -> None:
    r = sign_in().get(f"{PREFIX}/plan?{query}")
    assert r.status_code == 400
    problems = r.text.split('id="plan-problems"')[1].split("</div>")[0]
    assert says in problems
