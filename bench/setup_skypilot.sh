#!/usr/bin/env bash
# Install SkyPilot 0.14.1 into its own virtualenv (bench/.venv-skypilot, git-ignored),
# for the baseline of bench/plan_bench.py. Nothing is installed into Archipel's .venv
# and nothing touches ~/.sky: the baseline runs with HOME set to a temporary folder.
#
# Usage: bash bench/setup_skypilot.sh   (PYTHON=python3.11 to pick the interpreter)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${SKYPILOT_VENV:-$here/.venv-skypilot}"
python="${PYTHON:-python3}"
version="0.14.1"

marker="$venv/.installed-skypilot-$version"  # plan_bench.py looks for it
if [ -f "$marker" ]; then
    echo "skypilot $version already installed in $venv"
    exit 0
fi

echo "installing skypilot==$version into $venv (one-off, a minute or two)"
"$python" -m venv "$venv"
# pip's notes about this machine's local index folders are noise here
quiet() { "$@" 2> >(grep -v "is neither a file nor a directory" >&2); }
quiet "$venv/bin/pip" install --quiet --upgrade pip
quiet "$venv/bin/pip" install --quiet "skypilot==$version"
"$venv/bin/python" -c "import sky; assert sky.__version__ == '$version', sky.__version__"
touch "$marker"
echo "skypilot $version installed in $venv"
