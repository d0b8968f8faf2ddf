#!/bin/sh
# Peak RSS and wall time of one `pop3 fetch` against bench/big_message_server.py.
#
# Usage: bench/fetch_rss.sh POP3_BINARY DEST_KIND KIB [COUNT [PORT]]
#   DEST_KIND: mbox, maildir or mda (the MDA is `cat >/dev/null`)
# Example (one 200 MiB message into a new mbox):
#   bench/fetch_rss.sh target/debug/pop3 mbox 204800
set -eu
binary=$1 kind=$2 kib=$3 count=${4:-1} port=${5:-18199}
here=$(dirname "$0")
work=$(mktemp -d "${TMPDIR:-/tmp}/pop3-rss.XXXXXX")
trap 'rm -rf "$work"' EXIT
python3 "$here/big_message_server.py" "$port" "$kib" "$count" &
server=$!
# Wait until it listens.
i=0
while ! python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', $port), 1).close()" 2>/dev/null; do
    i=$((i + 1))
    [ $i -lt 100 ] || { echo "server did not start" >&2; exit 1; }
    sleep 0.1
done
case $kind in
    mbox) dest="--mbox $work/box" ;;
    maildir) dest="--maildir $work/Mail" ;;
    mda) dest="--mda cat>/dev/null --state $work/state" ;;
    *) echo "DEST_KIND: mbox, maildir or mda" >&2; exit 64 ;;
esac
# shellcheck disable=SC2086
POP3_BENCH_PW=x /usr/bin/time -f "peak_rss_kib=%M wall_s=%e" "$binary" \
    --host 127.0.0.1 --port "$port" --tls none --allow-plaintext-auth \
    --user bench --password-env POP3_BENCH_PW fetch $dest
wait $server || true
