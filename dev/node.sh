#!/usr/bin/env bash
# A kubelet node for the control plane of dev/cluster.sh: containerd (Debian) + runc,
# kubelet and kube-scheduler v1.34, a loopback-only CNI and a locally built pause image.
# Pods must use hostNetwork (traffic only on 127.0.0.0/8 here).
# Usage: dev/node.sh up|down   (dev/cluster.sh up --node runs `up` after the control plane)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
CACHE="${AURORA_CACHE:-$HOME/.cache/aurora}"
DIR="$CACHE/cluster"
NODE="$DIR/node"
BIN="$CACHE/bin/k8s-v1.34.4"
NODE_NAME="${AURORA_NODE_NAME:-aurora-node}"
PAUSE="aurora.local/pause:3.10"
SOCK="$NODE/containerd.sock"
log() { printf '[node] %s\n' "$*" >&2; }
PIDDIR="$DIR"
PKI="$DIR/pki"
# shellcheck source=dev/lib.sh
. "$here/lib.sh"

k() { "$BIN/kubectl" --kubeconfig "$DIR/kubeconfig" "$@"; }

kubeconfig_for() { # file, cert name
  local file="$1" user="$2"
  "$BIN/kubectl" config view --kubeconfig "$DIR/kubeconfig" --raw --minify -o json >/dev/null
  cp "$DIR/kubeconfig" "$file"
  "$BIN/kubectl" config --kubeconfig "$file" set-credentials "$user" --client-certificate "$DIR/pki/$user.crt" \
    --client-key "$DIR/pki/$user.key" --embed-certs >/dev/null
  "$BIN/kubectl" config --kubeconfig "$file" set-context aurora --cluster aurora --user "$user" >/dev/null
}

pause_image() {
  [ -f "$NODE/pause.tar" ] && return
  cat > "$NODE/pause.c" <<'C'
#include <signal.h>
#include <unistd.h>
static void bye(int s) { (void)s; _exit(0); }
int main(void) { signal(SIGTERM, bye); signal(SIGINT, bye); for (;;) pause(); }
C
  gcc -static -O2 -o "$NODE/pause" "$NODE/pause.c"
  python3 "$here/images.py" --single aurora.local/pause "$NODE/pause" --version 3.10 --out "$NODE/images" >/dev/null
  mv "$NODE/images/pause-3.10.tar" "$NODE/pause.tar"
}

up() {
  for c in kubelet kube-scheduler; do [ -x "$BIN/$c" ] || { log "$c missing: dev/cluster.sh build"; exit 1; }; done
  apt_install containerd runc containernetworking-plugins gcc libc6-dev
  mkdir -p "$NODE/cni" "$NODE/kubelet" "$NODE/images"
  cert "kubelet-client" "/O=system:nodes/CN=system:node:$NODE_NAME" clientAuth
  cert "kubelet-serving" "/CN=$NODE_NAME" serverAuth "IP:127.0.0.1,DNS:$NODE_NAME"
  cert "scheduler" "/CN=system:kube-scheduler" clientAuth
  kubeconfig_for "$NODE/kubelet.kubeconfig" kubelet-client
  kubeconfig_for "$NODE/scheduler.kubeconfig" scheduler
  cat > "$NODE/cni/10-loopback.conflist" <<'JSON'
{"cniVersion": "1.0.0", "name": "loopback-only", "plugins": [{"type": "loopback"}]}
JSON
  cat > "$NODE/containerd.toml" <<TOML
version = 2
root = "$NODE/containerd/root"
state = "$NODE/containerd/state"
[grpc]
  address = "$SOCK"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE"
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$NODE/cni"
TOML
  start containerd containerd --config "$NODE/containerd.toml"
  wait_until 30 containerd ctr --address "$SOCK" version
  pause_image
  ctr --address "$SOCK" -n k8s.io images import "$NODE/pause.tar" >/dev/null
  echo "nameserver 127.0.0.1" > "$NODE/resolv.conf"
  cat > "$NODE/kubelet.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: 127.0.0.1
port: 10250
readOnlyPort: 0
cgroupDriver: cgroupfs
failSwapOn: false
makeIPTablesUtilChains: false
resolvConf: $NODE/resolv.conf
containerRuntimeEndpoint: unix://$SOCK
tlsCertFile: $DIR/pki/kubelet-serving.crt
tlsPrivateKeyFile: $DIR/pki/kubelet-serving.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $DIR/pki/ca.crt}
authorization: {mode: Webhook}
evictionHard: {memory.available: "100Mi", nodefs.available: "2%", imagefs.available: "2%"}
# Images are imported, never pulled: image GC must not delete them (pause included).
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
YAML
  [ -f "$NODE/sysctl.saved" ] || sysctl -n vm.overcommit_memory kernel.panic kernel.panic_on_oops > "$NODE/sysctl.saved"
  # --cloud-provider=external: kubelet then never sets the Node's addresses itself (it
  # would pick a non-loopback interface's IP where the machine has one, and the apiserver
  # and hostNetwork pod IPs would follow it); we set 127.0.0.1 below.
  start kubelet "$BIN/kubelet" --config "$NODE/kubelet.yaml" --kubeconfig "$NODE/kubelet.kubeconfig" \
    --root-dir "$NODE/kubelet" --cert-dir "$NODE/kubelet/pki" --hostname-override "$NODE_NAME" \
    --cloud-provider=external
  start kube-scheduler "$BIN/kube-scheduler" --kubeconfig "$NODE/scheduler.kubeconfig" \
    --authentication-kubeconfig "$NODE/scheduler.kubeconfig" --authorization-kubeconfig "$NODE/scheduler.kubeconfig" \
    --leader-elect=false --bind-address 127.0.0.1 --secure-port 0
  wait_until 60 "node $NODE_NAME registered" k get node "$NODE_NAME"
  # kubelet refuses a loopback node IP and leaves the Node without addresses.
  k patch node "$NODE_NAME" --subresource=status --type merge \
    -p '{"status":{"addresses":[{"type":"InternalIP","address":"127.0.0.1"},{"type":"Hostname","address":"'"$NODE_NAME"'"}]}}' >/dev/null
  # No cloud controller will initialise the node: lift the taint external providers get.
  k taint node "$NODE_NAME" node.cloudprovider.kubernetes.io/uninitialized- >/dev/null 2>&1 || true
  wait_until 90 "node $NODE_NAME Ready" k wait --for condition=Ready --timeout 5s "node/$NODE_NAME"
  local ip; ip="$(k get node "$NODE_NAME" -o jsonpath='{.status.addresses[?(@.type=="InternalIP")].address}')"
  [ "$ip" = 127.0.0.1 ] || { log "node InternalIP is '$ip', not 127.0.0.1: refusing to run pods off loopback"; exit 1; }
  log "node $NODE_NAME Ready (containerd $SOCK)"
}

down() {
  stop kube-scheduler
  stop kubelet
  if running containerd; then
    for id in $(ctr --address "$SOCK" -n k8s.io tasks ls -q 2>/dev/null); do
      ctr --address "$SOCK" -n k8s.io tasks kill -s SIGKILL "$id" >/dev/null 2>&1 || true
    done
  fi
  stop containerd
  pkill -f "containerd-shim-runc-v2 .*-address $SOCK" 2>/dev/null || true
  # Mounts the kubelet and containerd left behind (pod volumes, overlay rootfs, shm).
  grep -o " ${NODE}[^ ]*" /proc/mounts | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
  if [ -f "$NODE/sysctl.saved" ]; then
    mapfile -t saved < "$NODE/sysctl.saved"
    sysctl -q -w vm.overcommit_memory="${saved[0]}" kernel.panic="${saved[1]}" kernel.panic_on_oops="${saved[2]}" || true
    rm -f "$NODE/sysctl.saved"
  fi
  rm -rf "$NODE/containerd" "$NODE/kubelet"
  k delete node "$NODE_NAME" --ignore-not-found >/dev/null 2>&1 || true
}

start() { # name, command...
  local name="$1"; shift
  running "$name" && return
  nohup "$@" >"$DIR/$name.log" 2>&1 &
  echo $! > "$DIR/$name.pid"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
