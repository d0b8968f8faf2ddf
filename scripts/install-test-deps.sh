#!/bin/sh
# Installs the system packages the integration tests need. Idempotent: does
# nothing when everything is present. Safe to run in CI before `cargo test`.
#
# * dovecot-pop3d — a real POP3 server (Dovecot 2.3 on Debian 12) that
#   test-support's `dovecot` module starts on loopback. The tests also
#   install it on demand when they run as root (test_support::dovecot::
#   ensure_installed), but doing it up front keeps apt output out of the
#   test log.
# * openssl — test-support's `pki::HomemadeCerts` makes self-signed server
#   certificates with `openssl req -x509`, as people do for home servers.
# * libuv1-dev — the C ABI's libuv example (pop3-ffi/examples/uv_fetch.c),
#   which the pop3-ffi tests build and run under AddressSanitizer.
# * Cyrus pop3d, a second real POP3 server (test-support's `cyrus` module),
#   unpacked into a private prefix by install-cyrus.sh (its package conflicts
#   with dovecot-pop3d).
# * man-db and groff-base — pop3-cli's tests render the man pages it
#   generates with `man -l` and check that `man pop3` finds them where its
#   README says to put them.
# * systemd — for `systemd-analyze verify` of the systemd unit in
#   pop3-cli/README.md (no systemd needs to run).
set -eu

"$(dirname "$0")/install-cyrus.sh"

DOVECOT=/usr/sbin/dovecot
POP3=/usr/lib/dovecot/pop3
PACKAGES="dovecot-pop3d openssl libuv1-dev man-db groff-base systemd"
UV_HEADER=/usr/include/uv.h

all_present() {
    [ -x "$DOVECOT" ] && [ -x "$POP3" ] && [ -f "$UV_HEADER" ] &&
        command -v openssl >/dev/null 2>&1 &&
        command -v man >/dev/null 2>&1 && command -v groff >/dev/null 2>&1 &&
        command -v systemd-analyze >/dev/null 2>&1
}

if all_present; then
    echo "install-test-deps: $PACKAGES already installed ($("$DOVECOT" --version))"
    exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
else
    echo "install-test-deps: need root (or sudo) to install $PACKAGES" >&2
    exit 1
fi

apt_install() {
    # shellcheck disable=SC2086 # word splitting of $SUDO/$PACKAGES is intended
    $SUDO env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y --no-install-recommends \
        -o DPkg::Lock::Timeout=300 $PACKAGES
}

echo "install-test-deps: installing $PACKAGES"
if ! apt_install; then
    echo "install-test-deps: install failed, running apt-get update and retrying" >&2
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update
    apt_install
fi

if ! all_present; then
    echo "install-test-deps: some of $PACKAGES still missing after install" >&2
    exit 1
fi
echo "install-test-deps: installed $("$DOVECOT" --version)"
