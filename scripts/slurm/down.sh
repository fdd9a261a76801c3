#!/usr/bin/env bash
# Stop the single-node Slurm that scripts/slurm/up.sh started: only the daemons whose
# pid files it wrote under ARCHIPEL_SLURM_DIR (default /var/lib/archipel-slurm).
# State (jobs, config, key) stays; up.sh starts from it again.
set -euo pipefail

DIR="${ARCHIPEL_SLURM_DIR:-/var/lib/archipel-slurm}"
WAIT="${ARCHIPEL_SLURM_WAIT:-15}"

stop() { # stop NAME: TERM the pid in run/NAME.pid, wait, then KILL
    local pidfile="$DIR/run/$1.pid" pid
    [[ -s "$pidfile" ]] || return 0
    pid="$(cat "$pidfile")"
    if kill -0 "$pid" 2>/dev/null && grep -qa "$1" "/proc/$pid/cmdline" 2>/dev/null; then
        printf 'slurm-down: stopping %s (pid %s)\n' "$1" "$pid" >&2
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq $((WAIT * 10))); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            printf 'slurm-down: %s did not stop, killing it\n' "$1" >&2
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    rm -f "$pidfile"
}

stop slurmd
stop slurmctld
stop munged
