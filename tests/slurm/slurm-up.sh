#!/usr/bin/env bash
# Start a private single-node SLURM (Debian 12, SLURM 22.05) for simfarm's tests.
#
# Installs the packages when missing (root + apt only), writes slurm.conf into a
# private state directory (never /etc/slurm), starts munged as user munge, then
# slurmctld and `slurmd -N localhost`, and waits until `sinfo` shows the node idle.
# Idempotent: a controller that already answers with this configuration is reused.
#
# Usage: tests/slurm/slurm-up.sh            (state in $SIMFARM_SLURM_DIR, default /tmp/simfarm-slurm)
# Then:  export SLURM_CONF=$SIMFARM_SLURM_DIR/slurm.conf   (printed on the last line)
# Stop:  tests/slurm/slurm-down.sh
#
# Exit codes: 0 running; 3 SLURM is not installed and cannot be installed here
# (not root / no apt-get); 1 installed but failed to start (see the logs it names).
set -euo pipefail

DIR=${SIMFARM_SLURM_DIR:-/tmp/simfarm-slurm}
CPUS=${SIMFARM_SLURM_CPUS:-8}
MEMORY_MB=${SIMFARM_SLURM_MEMORY_MB:-8192}
CTLD_PORT=${SIMFARM_SLURM_CTLD_PORT:-6817}
SLURMD_PORT=${SIMFARM_SLURM_SLURMD_PORT:-6818}
TIMEOUT=${SIMFARM_SLURM_START_TIMEOUT:-90}
export SLURM_CONF="$DIR/slurm.conf"

log() { echo "slurm-up: $*" >&2; }

install_if_missing() {
    local missing=0 cmd
    for cmd in slurmctld slurmd sinfo sbatch munged qsub; do
        PATH="$PATH:/usr/sbin:/sbin" command -v "$cmd" >/dev/null 2>&1 || missing=1
    done
    [ "$missing" = 0 ] && return 0
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        log "SLURM is not installed and cannot be installed here (needs root and apt-get)"
        exit 3
    fi
    log "installing slurmctld slurmd slurm-client munge slurm-wlm-torque"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends \
        slurmctld slurmd slurm-client munge slurm-wlm-torque >/dev/null
}

write_conf() {
    mkdir -p "$DIR/state" "$DIR/spool" "$DIR/jobs"
    cat >"$SLURM_CONF.tmp" <<CONF
# Written by simfarm tests/slurm/slurm-up.sh: single-node test cluster, no systemd.
ClusterName=simfarm
SlurmctldHost=localhost
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/slurmctld.log
SlurmdLogFile=$DIR/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
# sacct needs slurmdbd; the jobcomp file keeps final state and exit code instead.
JobCompType=jobcomp/filetxt
JobCompLoc=$DIR/jobcomp.txt
# Forget finished jobs quickly so tests exercise the "vanished from squeue" path.
MinJobAge=5
KillWait=2
MailProg=/bin/true
MpiDefault=none
ReturnToService=2
SlurmdParameters=config_overrides
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEMORY_MB State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
PartitionName=long Nodes=localhost MaxTime=INFINITE State=UP
# Cluster-wide licences (sbatch --licenses) for simfarm's licence pool tests.
Licenses=simfarm_anshpc:16,simfarm_solver:4
CONF
}

start_munge() {
    if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
        return 0
    fi
    if [ ! -s /etc/munge/munge.key ]; then
        log "creating /etc/munge/munge.key"
        mkdir -p /etc/munge
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
        chown munge:munge /etc/munge/munge.key
        chmod 0400 /etc/munge/munge.key
    fi
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    chown munge:munge /run/munge /var/log/munge /var/lib/munge
    log "starting munged as user munge"
    runuser -u munge -- /usr/sbin/munged
    touch "$DIR/munged.started-by-simfarm"
    local i
    for i in $(seq 1 50); do
        munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    log "munged did not come up"
    exit 1
}

pid_alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

node_state() { sinfo -h -N -n localhost -o %t 2>/dev/null | head -1 | tr -d '*~#!%$@^-' || true; }

install_if_missing
export PATH="$PATH:/usr/sbin:/sbin"
mkdir -p "$DIR"
if pid_alive "$DIR/slurmctld.pid" && pid_alive "$DIR/slurmd.pid" && [ "$(node_state)" != "" ]; then
    write_conf
    if cmp -s "$SLURM_CONF.tmp" "$SLURM_CONF"; then
        rm -f "$SLURM_CONF.tmp"
        log "already running ($DIR)"
    else
        # A controller started from an older version of this file: take the new one.
        mv "$SLURM_CONF.tmp" "$SLURM_CONF"
        log "already running ($DIR); configuration changed, scontrol reconfigure"
        scontrol reconfigure
    fi
else
    write_conf
    mv "$SLURM_CONF.tmp" "$SLURM_CONF"
    start_munge
    if ! pid_alive "$DIR/slurmctld.pid"; then
        log "starting slurmctld"
        slurmctld -f "$SLURM_CONF"
    fi
    if ! pid_alive "$DIR/slurmd.pid"; then
        log "starting slurmd -N localhost"
        slurmd -f "$SLURM_CONF" -N localhost
    fi
fi

deadline=$((SECONDS + TIMEOUT))
state=""
while [ $SECONDS -lt $deadline ]; do
    state=$(node_state)
    case "$state" in
        idle|mix|alloc) break ;;
        down|drain|drng|fail) scontrol update NodeName=localhost State=RESUME >/dev/null 2>&1 || true ;;
    esac
    sleep 0.5
done
case "$state" in
    idle|mix|alloc) ;;
    *)
        log "node not idle after ${TIMEOUT}s (state '${state}'); logs: $DIR/slurmctld.log $DIR/slurmd.log"
        tail -n 20 "$DIR/slurmctld.log" "$DIR/slurmd.log" >&2 || true
        exit 1
        ;;
esac
log "SLURM up: node localhost $state"
echo "export SLURM_CONF=$SLURM_CONF"
