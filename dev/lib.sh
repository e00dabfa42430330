# shellcheck shell=bash
# Shell helpers shared by dev/services.sh and dev/cluster.sh (sourced, not run).
# The caller sets PIDDIR (where <name>.pid files live) and defines log(); cert() also
# needs PKI (a directory holding ca.crt and ca.key).

apt_install() {
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  log "apt-get install ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

wait_until() { # seconds, description, command...
  local secs="$1" what="$2"; shift 2
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ]; then log "$what did not come up in ${secs}s"; return 1; fi
    sleep 0.2
  done
}

running() { [ -f "$PIDDIR/$1.pid" ] && kill -0 "$(cat "$PIDDIR/$1.pid")" 2>/dev/null; }

stop() { # name: SIGTERM, up to 10 s, then SIGKILL
  local name="$1"
  if running "$name"; then
    local pid; pid="$(cat "$PIDDIR/$name.pid")"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    # Gone, not just signalled: a restart right after must not find its port still open.
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    log "$name: stopped"
  fi
  rm -f "$PIDDIR/$name.pid"
}

cert() { # name, subject, extended key usage, subjectAltName (optional): a CA-signed X.509 v3 cert in $PKI
  local name="$1" subj="$2" eku="$3" san="${4:-}"
  [ -f "$PKI/$name.crt" ] && return
  # v3 with extensions: rustls (the operator's client) refuses v1 certificates.
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=$eku"
    [ -n "$san" ] && echo "subjectAltName=$san"
  } > "$PKI/$name.ext"
  openssl genrsa -out "$PKI/$name.key" 2048 2>/dev/null
  openssl req -new -key "$PKI/$name.key" -subj "$subj" -out "$PKI/$name.csr" 2>/dev/null
  openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial \
    -days 3650 -extfile "$PKI/$name.ext" -out "$PKI/$name.crt" 2>/dev/null
}
