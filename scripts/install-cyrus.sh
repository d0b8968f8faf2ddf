#!/bin/sh
# Puts Cyrus pop3d (Debian 12's cyrus-pop3d, Cyrus IMAP 3.6) where
# test-support's `cyrus` module looks for it, without installing it.
# Idempotent: does nothing when the unpacked copy is present and runs.
#
# Why unpacked: the Debian package cyrus-pop3d conflicts with dovecot-pop3d
# (both provide pop3-server), and the tests need Dovecot installed. So the two
# Cyrus packages (cyrus-common, cyrus-pop3d) are fetched with `apt-get
# download` and unpacked with `dpkg -x` into a private prefix, and the tests
# run its binaries with LD_LIBRARY_PATH pointing at the unpacked libcyrus*.
# Nothing of Cyrus is registered with dpkg, no cyrus user is created, no
# service is started.
#
# What is installed normally, with apt (none of it conflicts with Dovecot):
# * sasl2-bin — saslpasswd2, which writes the tests' sasldb of users;
# * libsasl2-modules, libsasl2-modules-db — the SASL plugins (PLAIN, SCRAM-*
#   and -PLUS, the sasldb auxprop) that Cyrus loads;
# * the shared libraries Cyrus' binaries link against, only those missing
#   (naming an installed library would upgrade it and whatever depends on it).
#
# The prefix is $POP3_CYRUS_PREFIX, default /var/cache/pop3-tests/cyrus
# (the default of test_support::cyrus as well): debs/ holds the downloaded
# packages, root/ the unpacked tree (root/usr/lib/cyrus/bin/master, pop3d, ...).
set -eu

PREFIX=${POP3_CYRUS_PREFIX:-/var/cache/pop3-tests/cyrus}
ROOT=$PREFIX/root
BIN=$ROOT/usr/lib/cyrus/bin
LIBDIR=$ROOT/usr/lib/x86_64-linux-gnu
CYRUS_PACKAGES="cyrus-common cyrus-pop3d"
SASL_PACKAGES="sasl2-bin libsasl2-modules libsasl2-modules-db"
# Shared libraries of cyrus-common and cyrus-pop3d (Depends: of bookworm's
# 3.6.1 packages, the lib* ones).
LIBRARIES="libc6 libcom-err2 libgcc-s1 libclamav12 libical3 libicu72 libjansson4
libkrb5-3 libldap-2.5-0 libpcre3 libpq5 libsasl2-2 libsqlite3-0 libssl3
libstdc++6 libwrap0 libxapian30 libxml2 libzephyr4 zlib1g"

say() { echo "install-cyrus: $*"; }

# True when the unpacked binaries exist and every library they need resolves.
usable() {
    [ -x "$BIN/master" ] && [ -x "$BIN/pop3d" ] && [ -x "$BIN/lmtpd" ] &&
        [ -x "$BIN/mbpath" ] && command -v saslpasswd2 >/dev/null 2>&1 &&
        [ -e /usr/lib/x86_64-linux-gnu/sasl2/libscram.so ] &&
        [ -e /usr/lib/x86_64-linux-gnu/sasl2/libsasldb.so ] || return 1
    for b in master pop3d lmtpd mbpath ctl_cyrusdb; do
        if LD_LIBRARY_PATH=$LIBDIR ldd "$BIN/$b" 2>&1 | grep -q 'not found'; then
            return 1
        fi
    done
}

if usable; then
    say "Cyrus $(cat "$PREFIX/version" 2>/dev/null || echo '?') already unpacked in $ROOT"
    exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
else
    say "need root (or sudo) to install $SASL_PACKAGES and to write $PREFIX" >&2
    exit 1
fi

missing=""
for p in $SASL_PACKAGES $LIBRARIES; do
    if ! dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing="$missing $p"
    fi
done

apt_install() {
    # shellcheck disable=SC2086 # word splitting of $SUDO/$missing is intended
    $SUDO env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y --no-install-recommends \
        -o DPkg::Lock::Timeout=300 $missing
}

if [ -n "$missing" ]; then
    say "installing$missing"
    if ! apt_install; then
        say "install failed, running apt-get update and retrying" >&2
        $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update
        apt_install
    fi
fi

$SUDO mkdir -p "$PREFIX/debs"
download() {
    # shellcheck disable=SC2086 # word splitting of $CYRUS_PACKAGES is intended
    (cd "$PREFIX/debs" && $SUDO rm -f ./*.deb && $SUDO apt-get download $CYRUS_PACKAGES)
}
say "downloading $CYRUS_PACKAGES"
if ! download; then
    say "download failed, running apt-get update and retrying" >&2
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update
    download
fi

# Unpack next to the old tree, then swap, so a half-unpacked tree is never
# what the tests find.
$SUDO rm -rf "$ROOT.new"
$SUDO mkdir -p "$ROOT.new"
for deb in "$PREFIX"/debs/*.deb; do
    $SUDO dpkg -x "$deb" "$ROOT.new"
done
$SUDO rm -rf "$ROOT.old"
if [ -e "$ROOT" ]; then $SUDO mv "$ROOT" "$ROOT.old"; fi
$SUDO mv "$ROOT.new" "$ROOT"
$SUDO rm -rf "$ROOT.old"
dpkg-deb -f "$(ls "$PREFIX"/debs/cyrus-pop3d_*.deb)" Version | $SUDO tee "$PREFIX/version" >/dev/null
# The tests run Cyrus' services as nobody: the tree must be readable by all.
$SUDO chmod -R a+rX "$PREFIX"

if ! usable; then
    say "Cyrus unpacked in $ROOT but not usable; missing libraries:" >&2
    for b in master pop3d lmtpd mbpath ctl_cyrusdb; do
        LD_LIBRARY_PATH=$LIBDIR ldd "$BIN/$b" 2>&1 | grep 'not found' >&2 || true
    done
    exit 1
fi
say "unpacked Cyrus $(cat "$PREFIX/version") in $ROOT"
