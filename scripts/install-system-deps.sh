#!/usr/bin/env bash
# Installs the system packages simfarm needs when they are missing (Debian/Ubuntu, as root
# or with sudo). Safe to run repeatedly: it installs nothing that is already there.
#   install-system-deps.sh          what running simfarm needs (redis-server)
#   install-system-deps.sh --test   also what the tests need (chromium for the browser test,
#                                   iproute2 for network namespaces, haproxy and nginx
#                                   for the balancers in front of two gateways; SLURM is installed
#                                   by tests/slurm/slurm-up.sh)
set -euo pipefail
need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
if [ "${1:-}" = "--test" ]; then
  # The dashboard's browser test drives Debian's chromium through Playwright.
  command -v chromium >/dev/null 2>&1 || need+=(chromium)
  # Workers on their own addresses (tests/netns.py): ip netns, veth.
  command -v ip >/dev/null 2>&1 || need+=(iproute2)
  # Two gateways behind a real balancer (tests/test_gateways.py, deploy/haproxy).
  command -v haproxy >/dev/null 2>&1 || need+=(haproxy)
  # The nginx config of deploy/nginx is checked and run too (the daemon is not started).
  PATH="$PATH:/usr/sbin" command -v nginx >/dev/null 2>&1 || need+=(nginx-light)
fi
if [ ${#need[@]} -eq 0 ]; then exit 0; fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "installing ${need[*]} ..."
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
