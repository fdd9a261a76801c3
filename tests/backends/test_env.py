"""The environment an attempt starts with: its own variables over a small base."""

from __future__ import annotations

import pwd

from hypothesis import given
from hypothesis import strategies as st

from archipel.backends._env import DEFAULT_PATH, attempt_environment

names = st.one_of(
    st.sampled_from(["PATH", "LANG", "LC_ALL", "TZ", "HOME", "ARCHIPEL_TOKEN", "AWS_SECRET"]),
    st.from_regex(r"[A-Z_][A-Z0-9_]{0,12}", fullmatch=True),
)
envs = st.dictionaries(names, st.text(max_size=8))
ACCOUNT = pwd.struct_passwd(("lab", "x", 1234, 1234, "", "/srv/lab", "/bin/false"))


@given(server=envs, own=envs)
def test_only_the_base_and_the_attempts_own_variables_reach_it(
    server: dict[str, str], own: dict[str, str]
) -> None:
    env = attempt_environment(own, ACCOUNT, server)
    for name, value in env.items():
        if name in own:
            assert value == own[name]  # what the attempt sets wins
        elif name in {"HOME", "USER", "LOGNAME"}:
            assert value == {"HOME": "/srv/lab", "USER": "lab", "LOGNAME": "lab"}[name]
        elif name == "PATH" and "PATH" not in server:
            assert value == DEFAULT_PATH
        else:  # passed on from the server: only how to find programs and print text
            assert name in {"PATH", "LANG", "LANGUAGE", "TZ"} or name.startswith("LC_")
            assert value == server[name]
    assert own.items() <= env.items()
