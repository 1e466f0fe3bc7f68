#!/usr/bin/env bash
# A Prometheus for one test (#43): Debian's prometheus in DIR (its own data folder), listening on
# 127.0.0.1:PORT, scraping only the fixture exporter (on a port of its own) every second. PORT 0
# picks a free port; the one used is written to DIR/port (a fixed pick from the ephemeral range
# could be some connection's port already). Waits until the exporter has been scraped three times
# (rate() has samples). `start.sh DIR PORT prometheus` starts Prometheus alone again (a test that
# stopped it), on the same data and the same exporter. With PROMETHEUS_TLS=DIR it serves HTTPS
# with DIR/server.pem and DIR/server.key (a certificate for 127.0.0.1 signed by DIR/ca.pem).
set -euo pipefail
DIR=$1 PORT=$2 ONLY=${3:-}
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
mkdir -p "$DIR"
[ "$PORT" = 0 ] && PORT=$(free_port)
if [ "$ONLY" = prometheus ]; then
  EXPORTER=$(cat "$DIR/exporter.port")
else
  EXPORTER=$(free_port)
  while [ "$EXPORTER" = "$PORT" ]; do EXPORTER=$(free_port); done
  echo "$EXPORTER" > "$DIR/exporter.port"
fi
echo "$PORT" > "$DIR/port"
# The servers below outlive this script: they must not inherit a descriptor of whoever started it
# (a pipe held open would keep that caller waiting for its end forever).
for fd in $(ls /proc/$$/fd); do [ "$fd" -gt 2 ] && eval "exec $fd>&-" 2>/dev/null; done
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$DIR/data"
[ -f "$DIR/ratios.json" ] || echo '{}' > "$DIR/ratios.json"
cat > "$DIR/prometheus.yml" <<YAML
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: app
    static_configs:
      - targets: ["127.0.0.1:$EXPORTER"]
YAML
if [ "$ONLY" != prometheus ]; then
  setsid python3 "$HERE/exporter.py" "$EXPORTER" "$DIR/ratios.json" >"$DIR/exporter.log" 2>&1 < /dev/null &
  echo $! > "$DIR/exporter.pid"
fi
WEB=() SCHEME=http CURL_TLS=()
if [ -n "${PROMETHEUS_TLS:-}" ]; then
  printf 'tls_server_config:\n  cert_file: %s/server.pem\n  key_file: %s/server.key\n' "$PROMETHEUS_TLS" "$PROMETHEUS_TLS" > "$DIR/web.yml"
  WEB=(--web.config.file="$DIR/web.yml") SCHEME=https CURL_TLS=(--cacert "$PROMETHEUS_TLS/ca.pem")
fi
setsid /usr/bin/prometheus --config.file="$DIR/prometheus.yml" --storage.tsdb.path="$DIR/data" "${WEB[@]}" \
  --web.listen-address="127.0.0.1:$PORT" --log.level=warn >"$DIR/prometheus.log" 2>&1 < /dev/null &
echo $! > "$DIR/prometheus.pid"
for _ in $(seq 1 150); do
  # The Prometheus asked must be the one started here (never another on a port left taken).
  kill -0 "$(cat "$DIR/prometheus.pid")" 2>/dev/null || { echo "prometheus exited:" >&2; tail -5 "$DIR/prometheus.log" >&2; exit 1; }
  # Three scrapes in the last 3.5 s (fresh ones, after a restart too): rate() has samples.
  if curl -fsS "${CURL_TLS[@]}" "$SCHEME://127.0.0.1:$PORT/api/v1/query?query=count_over_time(up%7Bjob%3D%22app%22%7D%5B3500ms%5D)%3E%3D3" 2>/dev/null | grep -q '"value"'; then
    exit 0
  fi
  sleep 0.2
done
echo "prometheus on 127.0.0.1:$PORT did not scrape the exporter within 30s" >&2
tail -20 "$DIR/prometheus.log" >&2 || true
exit 1
