"""The environment an attempt starts with: its own variables over a small base.

An attempt never inherits the server's environment as a whole: that holds the
server's own secrets (``ARCHIPEL_TOKEN``, upstream keys, database passwords,
cloud credentials) and its data directory (``ARCHIPEL_DATA_DIR``). It gets:

- from the server's environment, only what says how to find programs and how to
  print text and time: ``PATH``, ``LANG``, ``LANGUAGE``, ``LC_*`` and ``TZ``
  (a command such as ``python3`` must resolve as the operator expects, and
  output must not change its encoding when run by Archipel); ``PATH`` defaults
  to the usual system one when the server has none;
- from the account it runs as (the site's ``run_as`` user, else the server's
  own account): ``HOME``, ``USER`` and ``LOGNAME``; never ``TMPDIR`` or
  ``XDG_*``, which may point at the server's private folders;
- then what its request sets (the spec's ``run.env`` and the ``ARCHIPEL_*``
  variables of the attempt), which wins over the base.

Slurm jobs get the base from the submitting account's login environment on the
node instead (``sbatch --export=NONE``), see :mod:`archipel.backends._slurm`.
"""

from __future__ import annotations

import os
import pwd
from collections.abc import Mapping

#: names passed on from the server's environment (plus every ``LC_*``)
INHERITED = frozenset({"PATH", "LANG", "LANGUAGE", "TZ"})
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def _inherited(name: str) -> bool:
    return name in INHERITED or name.startswith("LC_")


def account_variables(account: pwd.struct_passwd | None) -> dict[str, str]:
    """``HOME``, ``USER`` and ``LOGNAME`` of ``account`` (default: this process's user)."""
    if account is None:
        try:
            account = pwd.getpwuid(os.getuid())
        except KeyError:  # a uid without a passwd entry (some containers): say nothing
            return {}
    return {"HOME": account.pw_dir, "USER": account.pw_name, "LOGNAME": account.pw_name}


def attempt_environment(
    own: Mapping[str, str],
    account: pwd.struct_passwd | None = None,
    server: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The whole environment of an attempt: the base above, then ``own``.

    ``account`` is the user the attempt runs as (``None``: this process's user);
    ``server`` is the server's environment (default: this process's).
    """
    source = os.environ if server is None else server
    base = {name: value for name, value in source.items() if _inherited(name)}
    base.setdefault("PATH", DEFAULT_PATH)
    return {**base, **account_variables(account), **own}
