#!/usr/bin/env bash
# Stops the cluster started by start-cluster.sh DIR: jobs first, then the daemons, then munged.
DIR=$1
export SLURM_CONF="$DIR/slurm.conf"
scancel --quiet --user=root 2>/dev/null
for _ in $(seq 1 50); do [ -z "$(squeue -h 2>/dev/null)" ] && break; sleep 0.2; done
scontrol shutdown 2>/dev/null
for f in "$DIR"/slurmd-*.pid "$DIR/slurmctld.pid"; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null; done
sleep 0.5
for f in "$DIR"/slurmd-*.pid "$DIR/slurmctld.pid"; do [ -f "$f" ] && kill -9 "$(cat "$f")" 2>/dev/null; done
munged -s --socket="$DIR/munge.socket" 2>/dev/null || { [ -f "$DIR/munged.pid" ] && kill "$(cat "$DIR/munged.pid")"; }
exit 0
