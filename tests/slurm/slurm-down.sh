#!/usr/bin/env bash
# Stop the private SLURM started by tests/slurm/slurm-up.sh (scontrol shutdown), and
# munged too when slurm-up.sh started it. State stays in $SIMFARM_SLURM_DIR for post-mortems.
set -uo pipefail

DIR=${SIMFARM_SLURM_DIR:-/tmp/simfarm-slurm}
export SLURM_CONF="$DIR/slurm.conf"
export PATH="$PATH:/usr/sbin:/sbin"

pid_alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

wait_gone() {
    local pidfile=$1 i
    for i in $(seq 1 100); do
        pid_alive "$pidfile" || return 0
        sleep 0.1
    done
    echo "slurm-down: $(basename "$pidfile" .pid) still alive; sending SIGTERM" >&2
    kill "$(cat "$pidfile")" 2>/dev/null || true
}

[ -f "$SLURM_CONF" ] || { echo "slurm-down: nothing to stop ($SLURM_CONF missing)" >&2; exit 0; }
# Cancel the test jobs first: slurmstepd keeps a job's processes alive across a daemon
# shutdown, which would leave them behind.
if pid_alive "$DIR/slurmctld.pid"; then
    squeue -h -o %i 2>/dev/null | xargs -r scancel 2>/dev/null || true
    for i in $(seq 1 50); do
        [ -z "$(squeue -h -t running,completing -o %i 2>/dev/null)" ] && break
        sleep 0.2
    done
fi
scontrol shutdown >/dev/null 2>&1 || true
wait_gone "$DIR/slurmctld.pid"
if pid_alive "$DIR/slurmd.pid"; then
    # `scontrol shutdown` reaches slurmd through the controller; if that was already gone
    # slurmd is still up.
    kill "$(cat "$DIR/slurmd.pid")" 2>/dev/null || true
fi
wait_gone "$DIR/slurmd.pid"
if [ -f "$DIR/munged.started-by-simfarm" ]; then
    pid=$(cat /run/munge/munged.pid 2>/dev/null || true)
    [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
    rm -f "$DIR/munged.started-by-simfarm"
fi
echo "slurm-down: stopped" >&2
