#!/usr/bin/env bash
# Make sure a Docker Engine is reachable (the simulator runs every host as a container).
#   - installs Debian's docker.io with apt-get if dockerd is missing;
#   - starts it: with systemctl when systemd is the init system, otherwise `dockerd` in the background
#     (log: /var/log/dockerd.log), then waits for its socket to answer.
# Idempotent: when `docker info` already works it changes nothing.  Needs root for anything it changes.
set -euo pipefail

WAIT_SECONDS=${ENSURE_DOCKER_WAIT:-60}
LOG=/var/log/dockerd.log

say() { echo "ensure-docker: $*"; }
die() { echo "ensure-docker: $*" >&2; exit 1; }
reachable() { command -v docker >/dev/null && docker info >/dev/null 2>&1; }

if reachable; then
  say "Docker Engine $(docker version --format '{{.Server.Version}}' 2>/dev/null) is running"
  exit 0
fi

[ "$(id -u)" -eq 0 ] || die "no reachable Docker Engine and not root: run 'sudo $0'"

if ! command -v dockerd >/dev/null || ! command -v docker >/dev/null; then
  say "installing docker.io (apt-get)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null
fi

if reachable; then  # the package's own service start may have done it
  say "Docker Engine is running"
  exit 0
fi

if [ -d /run/systemd/system ]; then
  say "starting docker.service"
  systemctl start docker.service
else
  # No init system (a container or a bare VM): run dockerd ourselves, detached from this shell.
  pidfile=/var/run/docker.pid
  if [ -f "$pidfile" ] && ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    say "removing stale $pidfile"
    rm -f "$pidfile"
  fi
  if [ -f "$pidfile" ]; then
    say "dockerd (pid $(cat "$pidfile")) is starting; waiting for it"
  else
    say "starting dockerd in the background (log: $LOG)"
    setsid nohup dockerd >>"$LOG" 2>&1 </dev/null &
  fi
fi

for _ in $(seq "$WAIT_SECONDS"); do
  if reachable; then
    say "Docker Engine $(docker version --format '{{.Server.Version}}') is running"
    exit 0
  fi
  sleep 1
done
tail -n 20 "$LOG" >&2 2>/dev/null || true
die "the Docker Engine did not answer within ${WAIT_SECONDS}s (see $LOG)"
