#!/usr/bin/env bash
# Runs examples/cloudflare-worker.js in workerd (Cloudflare's Workers
# runtime, from the npm registry) against a POP3 server with STLS, and asks
# it for the mailbox's size:
#
#   run.sh HOST PORT USER SECRET CA_PEM_FILE
#
# workerd is installed into a scratch directory; the package must be built
# (scripts/build-js). Prints the worker's JSON answer.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
PKG="$(cd "$HERE/../.." && pwd)"
HOST=$1 PORT=$2 USER_NAME=$3 SECRET=$4 CA=$5
# Pinned: a new runtime must not change what the test proves unannounced;
# raise it (and compatibilityDate below, if wanted) on purpose.
WORKERD_VERSION=1.20261123.1
WORK=$(mktemp -d)
trap 'kill "${SERVER:-}" 2>/dev/null || true; rm -rf "$WORK"' EXIT
(cd "$WORK" && npm init -y >/dev/null && npm install --no-audit --no-fund --silent "workerd@$WORKERD_VERSION")
cp "$PKG/examples/cloudflare-worker.js" "$PKG/sans-io.js" "$PKG/errors.js" \
    "$PKG/wasm/pop3_wasm.js" "$PKG/wasm/pop3_wasm_bg.wasm" "$CA" "$WORK/"
LISTEN=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$WORK/config.capnp" <<CAPNP
using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [
    (name = "main", worker = .pop3Worker),
    (name = "internet", network = (
      allow = ["public", "private", "local"],
      tlsOptions = (trustedCertificates = [embed "$(basename "$CA")"]),
    )),
  ],
  sockets = [(name = "http", address = "127.0.0.1:$LISTEN", http = (), service = "main")],
);
const pop3Worker :Workerd.Worker = (
  modules = [
    (name = "worker.js", esModule = embed "cloudflare-worker.js"),
    (name = "pop3/sans-io", esModule = embed "sans-io.js"),
    (name = "pop3/errors.js", esModule = embed "errors.js"),
    (name = "pop3/wasm/pop3_wasm.js", esModule = embed "pop3_wasm.js"),
    (name = "pop3/wasm", wasm = embed "pop3_wasm_bg.wasm"),
  ],
  compatibilityDate = "2024-09-23",
  globalOutbound = "internet",
  bindings = [
    (name = "POP3_HOST", text = "$HOST"),
    (name = "POP3_PORT", text = "$PORT"),
    (name = "POP3_USER", text = "$USER_NAME"),
    (name = "POP3_SECRET", text = "$SECRET"),
  ],
);
CAPNP
"$WORK/node_modules/.bin/workerd" serve "$WORK/config.capnp" &
SERVER=$!
for _ in $(seq 50); do
    curl -sf "http://127.0.0.1:$LISTEN/" && exit 0
    sleep 0.2
done
echo "run.sh: the worker did not answer" >&2
exit 1
