#!/usr/bin/env bash
# Make this machine able to run the simulator: Debian packages the build needs, and a running Docker
# Engine (installed and started by scripts/ensure-docker.sh).  Idempotent: installs only what is missing.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

need=()
command -v mmdebstrap >/dev/null || need+=(mmdebstrap)
python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
command -v make >/dev/null || need+=(make)
command -v lua5.1 >/dev/null || need+=(lua5.1)  # unit tests run the generated job_submit.lua
command -v luacheck >/dev/null || need+=(lua-check)  # make lint and the unit tests lint job_submit.lua
command -v ssh >/dev/null && command -v ssh-keygen >/dev/null || need+=(openssh-client)  # Ansible reaches the nodes over SSH
command -v chromium >/dev/null || need+=(chromium)  # tests/integration/test_statuspage.py: a real headless browser
if ((${#need[@]})); then
  echo "ensure-host: installing ${need[*]}"
  if [ "$(id -u)" -ne 0 ]; then
    echo "ensure-host: need root to install ${need[*]}: run 'sudo $0'" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
exec "$here/ensure-docker.sh"
