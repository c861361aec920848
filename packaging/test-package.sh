#!/usr/bin/env bash
# The package's static and install-time checks, one step per call, run as root by
# daemon/tests/package.rs (which runs the daemon between them):
#   test-package.sh build                 both packages: VERSION and a higher VERSION+1 (same binaries)
#   test-package.sh lint DEB              lintian (no errors) and the units' systemd-analyze security
#   test-package.sh install DEB           dpkg -i, then the user, groups, folders, units, man pages;
#                                         prints whether vigil-central.service is enabled
#   test-package.sh purge [keep|remove]   dpkg --purge, answering vigil/purge_data, then checks
set -euo pipefail
cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-target}
fail() { echo "FAIL: $*" >&2; exit 1; }
# dpkg, waiting (up to 3 minutes) while another package manager on the machine holds its lock
# rather than failing the test on someone else's apt run. dpkg's output goes to stderr.
dpkg_waiting() {
    local err tries=0
    err=$(mktemp)
    until DEBIAN_FRONTEND=noninteractive dpkg "$@" </dev/null >"$err" 2>&1; do
        if grep -q 'lock' "$err" && [ "$tries" -lt 90 ]; then
            tries=$((tries + 1))
            sleep 2
            continue
        fi
        cat "$err" >&2
        rm -f "$err"
        return 1
    done
    cat "$err" >&2
    rm -f "$err"
}

case "${1:-}" in
build)
    first=$(packaging/build-deb.sh | tail -1)
    upstream=$(dpkg-deb -f "$first" Version)
    upstream=${upstream%-*}
    # cargo-deb replaces the package it made before: keep both in a folder of their own.
    out="$target/debian/package-test"
    rm -rf "$out" && mkdir -p "$out"
    cp "$first" "$out/"
    # The upgrade: the same binaries under a higher version (no second release build).
    second=$(cargo deb --no-build --strip --locked -p vigil-daemon --deb-version "$upstream-2" | tail -1)
    cp "$second" "$out/"
    echo "$out/$(basename "$first")"
    echo "$out/$(basename "$second")"
    ;;
lint)
    deb=$2
    lintian --fail-on error --suppress-tags non-standard-file-perm "$deb" >&2 ||
        fail "lintian reports errors in $deb"
    for unit in vigil.service vigil-central.service; do
        systemd-analyze security --offline=yes --no-pager "packaging/systemd/$unit" >&2
        systemd-analyze security --offline=yes --no-pager "packaging/systemd/$unit" 2>&1 |
            grep -o "Overall exposure level for $unit: [0-9.]* [A-Z]*"
    done
    ;;
install)
    deb=$2
    dpkg_waiting -i "$deb"
    getent passwd vigil >/dev/null || fail "no vigil user"
    getent group vigil >/dev/null || fail "no vigil group"
    id -nG vigil | tr ' ' '\n' | grep -qx dialout || fail "vigil is not in dialout"
    if getent group bluetooth >/dev/null; then
        id -nG vigil | tr ' ' '\n' | grep -qx bluetooth || fail "vigil is not in bluetooth"
    fi
    [ "$(stat -c '%U:%G %a' /var/lib/vigil)" = "vigil:vigil 750" ] ||
        fail "/var/lib/vigil is $(stat -c '%U:%G %a' /var/lib/vigil)"
    for conf in /etc/vigil/vigil.toml /etc/vigil/central.toml; do
        [ "$(stat -c '%U:%G %a' $conf)" = "root:vigil 640" ] ||
            fail "$conf is $(stat -c '%U:%G %a' $conf)"
        grep -qx $conf /var/lib/dpkg/info/vigil.conffiles || fail "$conf is no conffile"
    done
    for bin in vigil vigil-sim; do [ -x /usr/bin/$bin ] || fail "no /usr/bin/$bin"; done
    for page in vigil vigil-run vigil-backup vigil-restore vigil-token vigil-sim; do
        [ -f /usr/share/man/man1/$page.1.gz ] || fail "no man page $page(1)"
    done
    [ -f /usr/share/vigil/profiles/kap-default.toml ] || fail "no default profile"
    [ -f /usr/share/man/man1/vigil-central.1.gz ] || fail "no man page vigil-central(1)"
    for unit in vigil.service vigil-central.service; do
        systemd-analyze verify /lib/systemd/system/$unit >&2 || fail "systemd-analyze verify $unit"
    done
    # The room's service is enabled at install; the central's only where the admin enabled it.
    wants=/etc/systemd/system/multi-user.target.wants
    [ -L $wants/vigil.service ] || fail "vigil.service is not enabled"
    echo "installed $(dpkg-query -W -f '${Version}' vigil)"
    echo "vigil-central.service enabled: $([ -L $wants/vigil-central.service ] && echo yes || echo no)"
    ;;
purge)
    answer=false
    [ "${2:-keep}" = remove ] && answer=true
    echo "vigil vigil/purge_data boolean $answer" | debconf-set-selections
    dpkg_waiting --purge vigil
    [ "$(dpkg-query -W -f '${db:Status-Status}' vigil 2>/dev/null)" != installed ] || fail "still installed"
    [ ! -e /usr/bin/vigil ] || fail "/usr/bin/vigil is still there"
    for conf in /etc/vigil/vigil.toml /etc/vigil/central.toml; do
        [ ! -e $conf ] || fail "the conffile $conf survived the purge"
    done
    for unit in vigil.service vigil-central.service; do
        [ ! -e /lib/systemd/system/$unit ] || fail "$unit is still installed"
        [ -z "$(find /etc/systemd/system -name $unit 2>/dev/null)" ] ||
            fail "links to $unit survived the purge: $(find /etc/systemd/system -name $unit)"
    done
    if [ "$answer" = true ]; then
        [ ! -e /var/lib/vigil ] || fail "/var/lib/vigil was kept though removal was confirmed"
    else
        [ -d /var/lib/vigil ] || fail "/var/lib/vigil was removed without confirmation"
    fi
    echo "purged; /var/lib/vigil $( [ -d /var/lib/vigil ] && echo kept || echo removed)"
    ;;
*)
    sed -n '2,8p' "$0" >&2
    exit 2
    ;;
esac
