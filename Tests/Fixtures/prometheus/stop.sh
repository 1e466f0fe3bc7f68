#!/usr/bin/env bash
# Stops what start.sh started in DIR: `stop.sh DIR prometheus` stops Prometheus alone.
DIR=$1 ONLY=${2:-}
for name in prometheus exporter; do
  [ "$ONLY" = prometheus ] && [ "$name" = exporter ] && continue
  if [ -f "$DIR/$name.pid" ]; then
    pid=$(cat "$DIR/$name.pid")
    kill "$pid" 2>/dev/null
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null
    rm -f "$DIR/$name.pid"
  fi
done
exit 0
