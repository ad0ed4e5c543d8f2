# shellcheck shell=bash
# The shared storage of the nested test, served from the outer side of the test network
# (inside the namespace $NS, at $OUTER_ADDR), as a storage box would serve both Xen hosts:
#   iSCSI: tgtd (Debian's userspace target), LUN 1 of target $ISCSI_IQN, backed by a sparse file
#   NBD:   nbd-server, export $NBD_EXPORT, backed by a sparse file
# The images get onto them with `imgrun storage push`, over the network like any client.
# Sourced by run-nested.sh after lib.sh and hosts.sh. Both daemons are ended by PID on
# every exit path (storage_cleanup, called from hosts_cleanup's caller).

STORAGE_PIDS=()
# tgtd's control socket is /var/run/tgtd/socket.N: a number of our own, never a system
# tgtd's 0.
TGT_CTL=$((1000 + $$ % 30000)) # tgtd takes at most 32767

storage_cleanup() {
    local pid
    for pid in "${STORAGE_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${STORAGE_PIDS[@]}"; do
        for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        kill -9 "$pid" 2>/dev/null || true
    done
    STORAGE_PIDS=()
    rm -f "/var/run/tgtd/socket.$TGT_CTL" "/var/run/tgtd/socket.$TGT_CTL.lock" 2>/dev/null || true
}

ensure_storage_tools() {
    local missing=()
    command -v tgtd >/dev/null || missing+=(tgt)
    command -v nbd-server >/dev/null || missing+=(nbd-server)
    if [ ${#missing[@]} -gt 0 ]; then
        log "installing ${missing[*]}"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2 \
            || die "apt-get install ${missing[*]} failed"
    fi
}

tgtadm_() { ip netns exec "$NS" tgtadm -C "$TGT_CTL" --lld iscsi "$@"; }

# iscsi_up: tgtd on $OUTER_ADDR:3260, no targets yet.
iscsi_up() {
    ip netns exec "$NS" tgtd -f -C "$TGT_CTL" --iscsi "portal=$OUTER_ADDR:3260" >"$RUN_DIR/tgtd.log" 2>&1 &
    STORAGE_PIDS+=($!)
    local ok=
    for _ in $(seq 50); do
        if tgtadm_ --mode target --op show >/dev/null 2>&1; then ok=1; break; fi
        sleep 0.2
    done
    [ -n "$ok" ] || { tail_log "$RUN_DIR/tgtd.log"; die "tgtd did not start"; }
    log "iSCSI target server on $OUTER_ADDR:3260 (tgt $(dpkg-query -W -f '${Version}' tgt 2>/dev/null))"
}

# iscsi_target TID IQN FILE_SIZE: target IQN with LUN 1 on a new sparse file; prints the file.
iscsi_target() {
    local tid=$1 iqn=$2 size=$3 file=$RUN_DIR/iscsi-$2.img
    truncate -s "$size" "$file"
    tgtadm_ --mode target --op new --tid "$tid" --targetname "$iqn"
    tgtadm_ --mode logicalunit --op new --tid "$tid" --lun 1 --backing-store "$file"
    tgtadm_ --mode target --op bind --tid "$tid" --initiator-address ALL
    log "iSCSI target $iqn: LUN 1, $size bytes"
    echo "$file"
}

# nbd_up EXPORT FILE_SIZE: nbd-server on $OUTER_ADDR:10809 exporting a new sparse file.
nbd_up() {
    local export=$1 size=$2
    NBD_BACKING=$RUN_DIR/nbd-$export.img
    truncate -s "$size" "$NBD_BACKING"
    cat >"$RUN_DIR/nbd-server.conf" <<CONF
[generic]
    user = root
    group = root
    listenaddr = $OUTER_ADDR
    port = 10809
[$export]
    exportname = $NBD_BACKING
    flush = true
    trim = true
CONF
    # It daemonizes (in the foreground, -d, it serves one client only); its PID file says
    # which process is ours to end.
    ip netns exec "$NS" nbd-server -C "$RUN_DIR/nbd-server.conf" -p "$RUN_DIR/nbd-server.pid" \
        >"$RUN_DIR/nbd-server.log" 2>&1 || { tail_log "$RUN_DIR/nbd-server.log"; die "nbd-server failed"; }
    local ok= pid=
    for _ in $(seq 50); do
        pid=$(cat "$RUN_DIR/nbd-server.pid" 2>/dev/null || true)
        if [ -n "$pid" ] && ip netns exec "$NS" bash -c "exec 3<>/dev/tcp/$OUTER_ADDR/10809" 2>/dev/null; then
            ok=1
            break
        fi
        sleep 0.2
    done
    [ -n "$pid" ] && STORAGE_PIDS+=("$pid")
    [ -n "$ok" ] || { tail_log "$RUN_DIR/nbd-server.log"; die "nbd-server did not start"; }
    log "NBD export $export on $OUTER_ADDR:10809 (nbd-server $(dpkg-query -W -f '${Version}' nbd-server 2>/dev/null)), $size bytes"
}
