#!/usr/bin/env bash
# Boots the two nested Xen hosts and keeps them up until interrupted (for
# working by hand). Usage: tests/xen/up.sh [ABSOLUTE_DIR_TO_SHARE]
# Writes $RUN_DIR/hosts.env (NS, addresses, ssh config) and prints how to reach
# the dom0s. Ctrl-C / SIGTERM tears everything down.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
# shellcheck source=hosts.sh
. "$(dirname "$0")/hosts.sh"

need_root
trap 'hosts_cleanup' EXIT
trap 'exit 130' INT TERM

eval "$(bash "$XEN_TESTS_DIR/build-dom0.sh")"
hosts_prepare "${1:-}"
hosts_network_up
host_boot 1
host_boot 2
host_wait_ready 1 240
log "host 1 ready"
host_wait_ready 2 240
log "host 2 ready"
cat >"$RUN_DIR/hosts.env" <<EOF
NS=$NS
RUN_DIR=$RUN_DIR
HOST1=$HOST1_ADDR
HOST2=$HOST2_ADDR
OUTER=$OUTER_ADDR
SSH_CONFIG=$RUN_DIR/ssh_config
EOF
log "up: ip netns exec $NS ssh -F $RUN_DIR/ssh_config root@$HOST1_ADDR   (env: $RUN_DIR/hosts.env)"
while :; do sleep 3600 & wait $! || true; done
