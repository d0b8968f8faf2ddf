#!/usr/bin/env bash
# Writes seed corpora for the fuzz targets from the protocol transcripts of
# pop3-proto/tests/transcripts/*.txt (server lines unescaped, commands mirrored),
# into fuzz/corpus/<target>/seed-* (or the directory given as $1).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
corpus="${1:-$here/corpus}"
cd "$here"
cargo run --quiet --example seeds -- "$corpus" "$here"/../pop3-proto/tests/transcripts/*.txt
