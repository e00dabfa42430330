#!/usr/bin/env bash
# A real single-node Kubernetes on 127.0.0.1 for the operator, the chart and their tests:
# etcd + kube-apiserver + kube-controller-manager (namespaces finalise, owner
# references are garbage-collected) and a node (dev/node.sh: containerd, kubelet,
# kube-scheduler), built through the Go module proxy from the wrapper modules in
# dev/cluster/ and cached under ~/.cache/aurora/bin.
# Usage: dev/cluster.sh up|down|status|build|leftovers|ingress|helm
#   up     builds what is missing, starts the control plane, writes the admin
#          kubeconfig to ~/.cache/aurora/cluster/kubeconfig, installs the ChatRoom
#          CRD and prints `export KUBECONFIG=…`
#   down   stops what `up` started and deletes the cluster's data (PKI is kept)
#   leftovers  fails when a process, mount or container of the cluster is still there
#   ingress  (re)starts only the ingress controller of a running cluster
#   helm   builds only Helm (the check lane's `helm lint`) and prints its path
# `up` also runs an ingress controller on the node: Traefik (Kubernetes Ingress provider) on
# 127.0.0.1:$AURORA_INGRESS_PORT (18088), access log in ~/.cache/aurora/cluster/ingress-access.log.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/.." && pwd)"
CACHE="${AURORA_CACHE:-$HOME/.cache/aurora}"
DIR="$CACHE/cluster"
K8S_VERSION=v1.34.4
ETCD_VERSION=3.6.16
HELM_VERSION=3.22.0
TRAEFIK_VERSION=v2.11.0
TRAEFIK="$CACHE/bin/traefik-$TRAEFIK_VERSION"
INGRESS_PORT="${AURORA_INGRESS_PORT:-18088}"
# The host name manifests/dev-values.yaml gives the chart's Ingress.
INGRESS_HOST=chat.aurora.test
BIN="$CACHE/bin/k8s-$K8S_VERSION"
ETCD="$CACHE/bin/etcd-$ETCD_VERSION"
API_PORT="${AURORA_APISERVER_PORT:-16443}"
ETCD_PORT="${AURORA_ETCD_PORT:-12379}"
KUBECONFIG_FILE="$DIR/kubeconfig"
COMPONENTS=(kube-apiserver kube-controller-manager kubectl kube-scheduler kubelet)

log() { printf '[cluster] %s\n' "$*" >&2; }
PIDDIR="$DIR"
PKI="$DIR/pki"
# shellcheck source=dev/lib.sh
. "$here/lib.sh"

go_build() { # module dir, output, package, ldflags
  (cd "$1" && GOTOOLCHAIN=local GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath -ldflags "$4" -o "$2.tmp" "$3" >&2)
  mv "$2.tmp" "$2"
}

build_helm() {
  command -v go >/dev/null || { log "go is required to build Helm"; exit 1; }
  mkdir -p "$BIN"
  # Helm's release builds set the Kubernetes version `helm template` assumes (else 1.20,
  # which the chart's kubeVersion refuses); the marker says this build has it.
  if [ ! -x "$BIN/helm" ] || [ ! -f "$BIN/helm.k8s-1.34" ]; then
    log "building helm $HELM_VERSION through the Go module proxy (first run only, ~5 min)"
    local chartutil=helm.sh/helm/v3/pkg/chartutil
    go_build "$here/cluster/helm" "$BIN/helm" helm.sh/helm/v3/cmd/helm \
      "-s -w -X helm.sh/helm/v3/internal/version.version=v$HELM_VERSION -X $chartutil.k8sVersionMajor=1 -X $chartutil.k8sVersionMinor=34"
    touch "$BIN/helm.k8s-1.34"
  fi
}

build() {
  command -v go >/dev/null || { log "go is required to build Kubernetes"; exit 1; }
  mkdir -p "$BIN"
  if [ ! -x "$ETCD" ]; then
    log "building etcd $ETCD_VERSION through the Go module proxy (first run only, ~2 min)"
    go_build "$here/cluster/etcd" "$ETCD" go.etcd.io/etcd/server/v3 "-s -w"
  fi
  local v="k8s.io/component-base/version" ld
  ld="-s -w -X $v.gitVersion=$K8S_VERSION -X $v.gitMajor=1 -X $v.gitMinor=34 -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION"
  build_helm
  if [ ! -x "$TRAEFIK" ]; then
    log "building Traefik $TRAEFIK_VERSION through the Go module proxy (first run only, ~10 min)"
    go_build "$here/cluster/traefik" "$TRAEFIK" github.com/traefik/traefik/v2/cmd/traefik \
      "-s -w -X github.com/traefik/traefik/v2/pkg/version.Version=$TRAEFIK_VERSION"
  fi
  for c in "${COMPONENTS[@]}"; do
    if [ ! -x "$BIN/$c" ]; then
      log "building $c $K8S_VERSION through the Go module proxy (first run only; all five ~10–15 min on 2 cores)"
      go_build "$here/cluster/k8s" "$BIN/$c" "k8s.io/kubernetes/cmd/$c" "$ld"
    fi
  done
}

pki() {
  mkdir -p "$DIR/pki"
  if [ ! -f "$DIR/pki/ca.crt" ]; then
    openssl req -x509 -newkey rsa:2048 -nodes -keyout "$DIR/pki/ca.key" -out "$DIR/pki/ca.crt" -days 3650 \
      -subj "/CN=aurora-dev-ca" -addext "basicConstraints=critical,CA:TRUE" \
      -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" 2>/dev/null
  fi
  cert apiserver "/CN=kube-apiserver" serverAuth \
    "IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,IP:10.96.0.1"
  cert admin "/O=system:masters/CN=aurora-admin" clientAuth
  cert controller-manager "/CN=system:kube-controller-manager" clientAuth
  cert apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" clientAuth
  cert ingress "/CN=aurora-ingress" clientAuth
  [ -f "$DIR/pki/sa.key" ] || openssl genrsa -out "$DIR/pki/sa.key" 2048 2>/dev/null
  [ -f "$DIR/pki/sa.pub" ] || openssl rsa -in "$DIR/pki/sa.key" -pubout -out "$DIR/pki/sa.pub" 2>/dev/null
}

kubeconfig() { # file, user cert name
  local file="$1" user="$2" k="$BIN/kubectl"
  rm -f "$file"
  $k config --kubeconfig "$file" set-cluster aurora --server "https://127.0.0.1:$API_PORT" \
    --certificate-authority "$DIR/pki/ca.crt" --embed-certs >/dev/null
  $k config --kubeconfig "$file" set-credentials "$user" --client-certificate "$DIR/pki/$user.crt" \
    --client-key "$DIR/pki/$user.key" --embed-certs >/dev/null
  $k config --kubeconfig "$file" set-context aurora --cluster aurora --user "$user" >/dev/null
  $k config --kubeconfig "$file" use-context aurora >/dev/null
  chmod 600 "$file"
}

start() { # name, command...
  local name="$1"; shift
  running "$name" && return
  nohup "$@" >"$DIR/$name.log" 2>&1 &
  echo $! > "$DIR/$name.pid"
}

up() {
  build
  command -v openssl >/dev/null || { log "openssl is required"; exit 1; }
  mkdir -p "$DIR"
  pki
  kubeconfig "$KUBECONFIG_FILE" admin
  kubeconfig "$DIR/controller-manager.kubeconfig" controller-manager
  start etcd "$ETCD" --name aurora --data-dir "$DIR/etcd" \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$((ETCD_PORT + 1))" \
    --initial-advertise-peer-urls "http://127.0.0.1:$((ETCD_PORT + 1))" \
    --initial-cluster "aurora=http://127.0.0.1:$((ETCD_PORT + 1))" \
    --unsafe-no-fsync --quota-backend-bytes 1073741824
  wait_until 30 etcd port_open 127.0.0.1 "$ETCD_PORT"
  start kube-apiserver "$BIN/kube-apiserver" \
    --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
    --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$API_PORT" \
    --tls-cert-file "$DIR/pki/apiserver.crt" --tls-private-key-file "$DIR/pki/apiserver.key" \
    --client-ca-file "$DIR/pki/ca.crt" \
    --service-account-key-file "$DIR/pki/sa.pub" --service-account-signing-key-file "$DIR/pki/sa.key" \
    --service-account-issuer https://kubernetes.default.svc \
    --service-cluster-ip-range 10.96.0.0/16 \
    --authorization-mode Node,RBAC --endpoint-reconciler-type none --allow-privileged=true \
    --kubelet-preferred-address-types InternalIP \
    --kubelet-client-certificate "$DIR/pki/apiserver-kubelet-client.crt" \
    --kubelet-client-key "$DIR/pki/apiserver-kubelet-client.key"
  wait_until 90 kube-apiserver "$BIN/kubectl" --kubeconfig "$KUBECONFIG_FILE" get --raw /readyz
  start kube-controller-manager "$BIN/kube-controller-manager" \
    --kubeconfig "$DIR/controller-manager.kubeconfig" \
    --authorization-kubeconfig "$DIR/controller-manager.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port 0 \
    --service-account-private-key-file "$DIR/pki/sa.key" --root-ca-file "$DIR/pki/ca.crt" \
    --use-service-account-credentials --leader-elect=false \
    --service-cluster-ip-range 10.96.0.0/16
  local k=("$BIN/kubectl" --kubeconfig "$KUBECONFIG_FILE")
  wait_until 60 "the default service account" "${k[@]}" -n default get serviceaccount default
  "${k[@]}" apply --server-side -f "$repo/manifests/crds/chatroom.yaml" -f "$repo/manifests/crds/chatapikey.yaml" >/dev/null
  "${k[@]}" wait --for condition=Established --timeout 30s crd/chatrooms.aurorachat.dev crd/chatapikeys.aurorachat.dev >/dev/null
  "$here/node.sh" up
  ingress_up
  log "control plane up: https://127.0.0.1:$API_PORT ($("${k[@]}" version -o json | grep -m1 gitVersion | tr -d ' ",'))"
  print_env
}

# Traefik with the Kubernetes Ingress provider, as user aurora-ingress (dev/cluster/traefik/rbac.yaml).
# Services get no endpoints here: Ingress backends are ExternalName Services (localhost:port).
# X-Forwarded-For from clients is replaced (they are not trusted); readTimeout 0 keeps
# WebSockets open past any heartbeat; the access log is what an operator would keep.
ingress_up() {
  "$BIN/kubectl" --kubeconfig "$KUBECONFIG_FILE" apply -f "$here/cluster/traefik/rbac.yaml" >/dev/null
  kubeconfig "$DIR/ingress.kubeconfig" ingress
  : > "$DIR/ingress-access.log"
  start ingress env KUBECONFIG="$DIR/ingress.kubeconfig" "$TRAEFIK" \
    --global.checknewversion=false --global.sendanonymoususage=false \
    --entrypoints.web.address="127.0.0.1:$INGRESS_PORT" \
    --entrypoints.web.transport.respondingTimeouts.readTimeout=0 \
    --providers.kubernetesingress=true \
    --providers.kubernetesingress.allowexternalnameservices=true \
    --providers.kubernetesingress.ingressendpoint.ip=127.0.0.1 \
    --accesslog=true --accesslog.filepath="$DIR/ingress-access.log" \
    --log.level=INFO
  wait_until 30 "the ingress controller" port_open 127.0.0.1 "$INGRESS_PORT"
  log "ingress: Traefik $TRAEFIK_VERSION on http://127.0.0.1:$INGRESS_PORT (host $INGRESS_HOST)"
}

print_env() {
  echo "export KUBECONFIG=$KUBECONFIG_FILE"
  echo "export PATH=$BIN:\$PATH"
  echo "export AURORA_INGRESS_URL=http://127.0.0.1:$INGRESS_PORT"
  echo "export AURORA_INGRESS_HOST=$INGRESS_HOST"
  echo "export AURORA_INGRESS_ACCESS_LOG=$DIR/ingress-access.log"
}

down() {
  stop ingress
  if running kube-apiserver; then "$here/node.sh" down; fi
  stop kube-controller-manager
  stop kube-apiserver
  stop etcd
  rm -rf "$DIR/etcd"
}

# What `down` must not leave behind: our processes, mounts under the cluster dir, shims.
leftovers() {
  local found=0 p
  for p in etcd kube-apiserver kube-controller-manager kubelet kube-scheduler containerd traefik; do
    if pgrep -f "^([^ ]*/)?$p(-v?[0-9.]+)?( |$)" >/dev/null; then log "left running: $p"; found=1; fi
  done
  if pgrep -f containerd-shim-runc-v2 >/dev/null; then log "left running: containerd shims"; found=1; fi
  if grep -q " $DIR/" /proc/mounts; then log "left mounted: $(grep -o " $DIR/[^ ]*" /proc/mounts | head -3)"; found=1; fi
  if [ -d "$DIR/node/containerd" ] || [ -d "$DIR/etcd" ]; then log "left data: containerd or etcd state"; found=1; fi
  [ "$found" -eq 0 ] && log "clean: no process, mount or container left"
  return "$found"
}

status() {
  for c in etcd kube-apiserver kube-controller-manager ingress; do
    if running "$c"; then log "$c: running (pid $(cat "$DIR/$c.pid"))"; else log "$c: not running"; fi
  done
  print_env
}

case "${1:-status}" in
  up) up ;;
  down) down ;;
  status) status ;;
  build) build ;;
  helm) build_helm; echo "$BIN/helm" ;;
  env) print_env ;;
  leftovers) leftovers ;;
  ingress) pki; ingress_up; print_env ;;
  *) echo "usage: $0 up|down|status|build|leftovers|ingress" >&2; exit 2 ;;
esac
