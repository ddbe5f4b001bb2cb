#!/usr/bin/env bash
# Start or stop the sample service of one deployment root.
#   service.sh start ROOT PORT   # start ROOT/current/app.py on 127.0.0.1:PORT, detached
#   service.sh stop ROOT         # stop whatever ROOT's pid file names
set -euo pipefail
action=$1 root=$2
pidfile="$root/service.pid"

stop() {
  [ -f "$pidfile" ] || return 0
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid"
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
}

case $action in
  stop) stop; echo "stopped" ;;
  start)
    port=$3
    stop
    # setsid: the service has its own session, so it outlives this step's process group
    setsid python3 "$root/current/app.py" --port "$port" --db "$root/data/app.db" \
      >>"$root/service.log" 2>&1 < /dev/null &
    echo $! > "$pidfile"
    echo "started pid $(cat "$pidfile") on 127.0.0.1:$port"
    ;;
  *) echo "usage: service.sh start ROOT PORT | stop ROOT" >&2; exit 2 ;;
esac
