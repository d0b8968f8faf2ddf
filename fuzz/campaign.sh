#!/usr/bin/env bash
# A long fuzzing campaign:
#   fuzz/campaign.sh DURATION [TARGET...]
# DURATION is per target: 3600, 90s, 45m or 8h. Targets run one after the
# other (all of them if none is named), each growing corpus/<target>; crashes
# go to artifacts/<target>/ and logs to logs/campaign-<target>.log.
#
# Environment:
#   WORKERS=N   run N fuzzing processes per target (libFuzzer -fork=N, which
#               also keeps going after a crash); default 1, to leave cores free.
#   POP3_FUZZ_ALLOW_KNOWN=id,...  skip the assertions of known, reported bugs
#               (see README.md) to look past them until they are fixed.
#   CMIN=1      minimise each corpus (cargo fuzz cmin) after its run.
set -uo pipefail

if [ $# -lt 1 ]; then
    sed -n '2,15p' "$0" >&2
    exit 2
fi
duration="$1"
shift
case "$duration" in
    *h) secs=$(( ${duration%h} * 3600 )) ;;
    *m) secs=$(( ${duration%m} * 60 )) ;;
    *s) secs=${duration%s} ;;
    *) secs=$duration ;;
esac
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"
mkdir -p logs

cargo +nightly fuzz build || exit 1
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo +nightly fuzz list)
fi
if ! ls corpus/*/seed-* >/dev/null 2>&1; then
    ./seed.sh || exit 1
fi

workers="${WORKERS:-1}"
status=0
for t in "${targets[@]}"; do
    mkdir -p corpus/"$t" artifacts/"$t"
    extra=()
    if [ "$workers" -gt 1 ]; then
        extra=(-fork="$workers" -ignore_crashes=1)
    fi
    echo "campaign: $t for ${secs}s (${workers} worker(s)), log logs/campaign-$t.log" >&2
    if ! cargo +nightly fuzz run "$t" "corpus/$t" -- \
        -max_total_time="$secs" -timeout=25 -dict="$here/dict/pop3.dict" -print_final_stats=1 "${extra[@]}" \
        >"logs/campaign-$t.log" 2>&1; then
        status=1
    fi
    grep -E '^#[0-9]+' "logs/campaign-$t.log" | tail -1 >&2
    grep "Test unit written\|crash-\|Done" "logs/campaign-$t.log" | tail -3 >&2
    if [ -n "${CMIN:-}" ]; then
        cargo +nightly fuzz cmin "$t" "corpus/$t" -- -dict="$here/dict/pop3.dict" >"logs/cmin-$t.log" 2>&1 || true
    fi
done
echo "campaign: crash artifacts:" >&2
ls -1 artifacts/*/crash-* artifacts/*/oom-* artifacts/*/timeout-* 2>/dev/null >&2 || echo "  none" >&2
exit $status
