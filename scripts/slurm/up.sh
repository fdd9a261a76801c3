#!/usr/bin/env bash
# Start a real single-node Slurm (Debian's slurm-wlm + munge) for Archipel's tests.
#
# One node (this machine, `hostname -s`, at 127.0.0.1) and two partitions that stand
# for two sites, `eu-fr` (the default) and `eu-de`. Everything lives under one folder,
# ARCHIPEL_SLURM_DIR (default /var/lib/archipel-slurm): config, munge key and socket,
# controller state, spool, logs and the pid files that down.sh uses.
#
# Idempotent: if the daemons it started are alive and the node answers, it does nothing.
# Needs root (apt-get, daemons). Clients find the cluster with
#   export SLURM_CONF=$ARCHIPEL_SLURM_DIR/etc/slurm.conf
# (and /etc/slurm/slurm.conf is linked to it when that file does not exist yet).
#
# There is no slurmdbd, so `sacct` does not work here: finished jobs are kept by the
# controller for MinJobAge seconds (1 hour) and read with `squeue -t all`/`scontrol`.
set -euo pipefail

DIR="${ARCHIPEL_SLURM_DIR:-/var/lib/archipel-slurm}"
WAIT="${ARCHIPEL_SLURM_WAIT:-30}" # seconds to wait for the node to come up
NODE="$(hostname -s)"
CONF="$DIR/etc/slurm.conf"
SOCKET="$DIR/munge/munge.socket.2"
export SLURM_CONF="$CONF"

say() { printf 'slurm-up: %s\n' "$*" >&2; }
die() {
    say "ERROR: $*"
    for log in "$DIR/log/munged.log" "$DIR/log/slurmctld.log" "$DIR/log/slurmd.log"; do
        if [[ -s "$log" ]]; then
            say "--- last lines of $log"
            tail -n 15 "$log" >&2
        fi
    done
    exit 1
}

alive() { # alive PIDFILE: the process recorded in PIDFILE runs
    [[ -s "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null
}

node_ready() { # the node takes work in some partition (idle, mixed or allocated)
    local states
    states="$(timeout 5 sinfo -h -n "$NODE" -o '%T' 2>/dev/null)" || return 1
    grep -qE '^(idle|mixed|allocated|completing)$' <<<"$states"
}

cpus="$(nproc)"
mem_mb="$(awk '/^MemTotal:/ { print int($2 / 1024 * 0.95) }' /proc/meminfo)"

render_conf() { # the slurm.conf for this machine, on stdout
    cat <<CONF
# Written by Archipel's scripts/slurm/up.sh: a single-node test cluster.
ClusterName=archipel
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort=6817
SlurmdPort=6818
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$SOCKET
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# A container has no usable cgroups: track processes by parentage, bind nothing.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
# No slurmdbd: sacct does not work. Finished jobs stay in the controller for
# MinJobAge seconds, readable with squeue -t all / scontrol; they are also
# appended to a text file.
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$DIR/log/jobcomp.log
MinJobAge=3600
# Refuse at submission what the partition can never run (e.g. more nodes than it has).
EnforcePartLimits=ALL
# Fast for tests: schedule at once on submit (no batch_sched_delay, no backfill
# interval), kill quickly on cancel (KillWait).
SchedulerType=sched/builtin
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0
KillWait=2
InactiveLimit=0
Waittime=0
MessageTimeout=10
SlurmdTimeout=30
ReturnToService=2
MpiDefault=none
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
# Two partitions on the same node stand for two sites. CPUs are shared by up to
# four jobs each so that short test jobs do not queue behind each other.
PartitionName=eu-fr Nodes=$NODE Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
PartitionName=eu-de Nodes=$NODE Default=NO MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
CONF
}

# --- already running? ----------------------------------------------------------------
if alive "$DIR/run/munged.pid" && alive "$DIR/run/slurmctld.pid" \
    && alive "$DIR/run/slurmd.pid" && node_ready; then
    if render_conf | cmp -s - "$CONF"; then
        say "already running (SLURM_CONF=$CONF)"
        exit 0
    fi
    # This script changed the config since the cluster started: apply it in place.
    render_conf >"$CONF.new" && mv "$CONF.new" "$CONF"
    timeout 30 scontrol reconfigure || die "scontrol reconfigure failed"
    say "already running, config updated and reconfigured (SLURM_CONF=$CONF)"
    exit 0
fi

[[ "$(id -u)" == 0 ]] || die "must run as root (installs packages, starts daemons)"

# --- packages ------------------------------------------------------------------------
missing=()
for pkg in slurm-wlm munge; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
        || missing+=("$pkg")
done
if ((${#missing[@]})); then
    say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y --no-install-recommends "${missing[@]}" >"/tmp/archipel-slurm-apt.log" 2>&1; then
        apt-get update >>"/tmp/archipel-slurm-apt.log" 2>&1 \
            || die "apt-get update failed (see /tmp/archipel-slurm-apt.log)"
        apt-get install -y --no-install-recommends "${missing[@]}" \
            >>"/tmp/archipel-slurm-apt.log" 2>&1 \
            || die "apt-get install ${missing[*]} failed (see /tmp/archipel-slurm-apt.log)"
    fi
fi
for tool in munged slurmctld slurmd sinfo sbatch; do
    command -v "$tool" >/dev/null || die "$tool not found after installing slurm-wlm and munge"
done

# --- folders, config, key ------------------------------------------------------------
mkdir -p "$DIR"/{etc,munge,state,spool,run,log}
chmod 0755 "$DIR" "$DIR/etc" "$DIR/run" "$DIR/log"
chmod 0700 "$DIR/munge" "$DIR/state" "$DIR/spool"

render_conf >"$CONF.new"
mv "$CONF.new" "$CONF"
cat >"$DIR/etc/cgroup.conf" <<CONF
# Written by Archipel's scripts/slurm/up.sh: cgroups are not used (proctrack/linuxproc).
CgroupPlugin=autodetect
IgnoreSystemd=yes
CONF
chmod 0644 "$CONF" "$DIR/etc/cgroup.conf"

if [[ ! -e /etc/slurm/slurm.conf ]]; then
    mkdir -p /etc/slurm
    ln -s "$CONF" /etc/slurm/slurm.conf
fi

if [[ ! -s "$DIR/munge/munge.key" ]]; then
    say "creating a munge key"
    (umask 077 && dd if=/dev/urandom of="$DIR/munge/munge.key" bs=1024 count=1 status=none)
fi
chmod 0400 "$DIR/munge/munge.key"

# --- daemons -------------------------------------------------------------------------
if ! alive "$DIR/run/munged.pid"; then
    say "starting munged"
    rm -f "$SOCKET" "$SOCKET.lock"
    munged --force --key-file="$DIR/munge/munge.key" --socket="$SOCKET" \
        --pid-file="$DIR/run/munged.pid" --log-file="$DIR/log/munged.log" \
        --seed-file="$DIR/munge/munged.seed" || die "munged did not start"
fi
for _ in $(seq 50); do
    [[ -S "$SOCKET" ]] && break
    sleep 0.1
done
munge -n -S "$SOCKET" | unmunge -S "$SOCKET" >/dev/null 2>&1 || die "munge does not work"

if ! alive "$DIR/run/slurmctld.pid"; then
    say "starting slurmctld"
    slurmctld -f "$CONF" || die "slurmctld did not start"
fi
if ! alive "$DIR/run/slurmd.pid"; then
    say "starting slurmd"
    slurmd -f "$CONF" -N "$NODE" || die "slurmd did not start"
fi

deadline=$((SECONDS + WAIT))
resumed=0
until node_ready; do
    if ((SECONDS > deadline)); then
        sinfo -N -l >&2 || true
        die "node $NODE not ready within ${WAIT}s"
    fi
    # A node left drained or down by an earlier run (or a test) is put back in service.
    state="$(timeout 5 sinfo -h -n "$NODE" -o '%T' 2>/dev/null | head -n 1)" || state=""
    if ((!resumed)) && [[ "$state" =~ ^(drained|draining|down)$ ]]; then
        say "node $NODE is $state: resuming it"
        timeout 5 scontrol update NodeName="$NODE" State=RESUME || true
        resumed=1
    fi
    sleep 0.2
done
say "running: node $NODE ($cpus CPUs, ${mem_mb} MB), partitions eu-fr (default) and eu-de"
say "clients: export SLURM_CONF=$CONF"
