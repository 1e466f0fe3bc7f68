#!/usr/bin/env bash
# Starts a real Slurm cluster on localhost for the drain back-end's tests: munged, slurmctld and
# two slurmd (n1, n2), everything under DIR (no systemd, nothing outside DIR).
# Usage: start-cluster.sh DIR PORTBASE   → prints SLURM_CONF=DIR/slurm.conf when ready.
set -euo pipefail
DIR=$1
PORT=${2:-16900}
mkdir -p "$DIR/state" && chmod 0755 "$DIR"
head -c 1024 /dev/urandom > "$DIR/munge.key" && chmod 0400 "$DIR/munge.key"
munged --force --socket="$DIR/munge.socket" --key-file="$DIR/munge.key" --log-file="$DIR/munged.log" \
  --pid-file="$DIR/munged.pid" --seed-file="$DIR/munged.seed"
cat > "$DIR/slurm.conf" <<CONF
ClusterName=drover$PORT
SlurmctldHost=localhost
SlurmctldPort=$PORT
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$DIR/munge.socket
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool-%n
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd-%n.pid
SlurmctldLogFile=$DIR/slurmctld.log
SlurmdLogFile=$DIR/slurmd-%n.log
ProctrackType=proctrack/pgid
TaskPlugin=task/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
ReturnToService=2
MailProg=/bin/true
Epilog=$DIR/epilog.sh
NodeName=n1 NodeHostname=localhost NodeAddr=127.0.0.1 Port=$((PORT + 1)) CPUs=1 State=UNKNOWN
NodeName=n2 NodeHostname=localhost NodeAddr=127.0.0.1 Port=$((PORT + 2)) CPUs=1 State=UNKNOWN
PartitionName=debug Nodes=n1,n2 Default=YES MaxTime=INFINITE State=UP
CONF
# An epilog that keeps a finished job COMPLETING for 4 s while DIR/slow-epilog exists (#42).
cat > "$DIR/epilog.sh" <<EPILOG
#!/bin/sh
if [ -e "$DIR/slow-epilog" ]; then sleep 4; touch "$DIR/epilog-done"; fi
exit 0
EPILOG
chmod 0755 "$DIR/epilog.sh"
export SLURM_CONF="$DIR/slurm.conf"
slurmctld
slurmd -N n1
slurmd -N n2
for _ in $(seq 1 100); do
  if scontrol ping 2>/dev/null | grep -q UP && [ "$(sinfo -h -o '%t' -n n1,n2 2>/dev/null | sort -u)" = "idle" ]; then
    echo "SLURM_CONF=$SLURM_CONF"
    exit 0
  fi
  sleep 0.2
done
echo "slurm did not become ready; see $DIR/*.log" >&2
exit 1
