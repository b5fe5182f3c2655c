#!/bin/sh
# The systemd units as installed: `systemd-analyze security` rates the service 3.0 or better (its
# sandbox: its own user, no capabilities, a system-call filter), and `systemd-analyze verify`
# finds nothing wrong with the service and the socket.
set -eu
. "$(dirname "$0")/lib.sh"
command -v systemd-analyze >/dev/null || mv_skip "systemd-analyze is not installed (apt-get install systemd)"
systemd-analyze --help 2>/dev/null | grep -q -- '--offline' ||
	mv_skip "this systemd-analyze has no --offline (systemd 250 or newer has)"
unit=$MV_TOP_BUILDDIR/daemon/memvirtd.service
[ -r "$unit" ] || mv_fail "$unit is not built"
mv_tmpdir

# The security check reads the unit file alone (--offline=yes: no running systemd needed).
cp "$unit" "$MV_TMP/memvirtd.service"
systemd-analyze security --offline=yes --no-pager "$MV_TMP/memvirtd.service" >"$MV_TMP/security.out" 2>&1 ||
	{ cat "$MV_TMP/security.out" >&2; mv_fail "systemd-analyze security failed"; }
score=$(sed -n 's/.*Overall exposure level for memvirtd\.service: \([0-9][0-9]*\.[0-9]\).*/\1/p' "$MV_TMP/security.out")
[ -n "$score" ] || { cat "$MV_TMP/security.out" >&2; mv_fail "no overall exposure level in the output"; }
awk -v s="$score" 'BEGIN { exit !(s <= 3.0) }' ||
	{ grep '✗' "$MV_TMP/security.out" >&2; mv_fail "memvirtd.service is rated $score, above 3.0"; }
echo "ok: systemd-analyze security rates memvirtd.service $score"

# Unit files that would be installed, with ExecStart= naming the daemon built here so that verify
# can check it is there.
sed "s|^ExecStart=[^ ]*/memvirtd |ExecStart=$MV_TOP_BUILDDIR/daemon/memvirtd |" "$unit" >"$MV_TMP/memvirtd.service"
grep -q "^ExecStart=$MV_TOP_BUILDDIR/daemon/memvirtd " "$MV_TMP/memvirtd.service" ||
	mv_fail "no ExecStart= line naming memvirtd in $unit"
cp "$MV_TOP_SRCDIR/daemon/memvirtd.socket" "$MV_TMP/memvirtd.socket"
(cd "$MV_TMP" && SYSTEMD_LOG_LEVEL=notice systemd-analyze verify --man=no ./memvirtd.socket ./memvirtd.service) \
	>"$MV_TMP/verify.out" 2>&1 || { cat "$MV_TMP/verify.out" >&2; mv_fail "systemd-analyze verify failed"; }
# verify reports some problems without failing: any line that names a unit is one.
grep -E 'memvirtd\.(service|socket)' "$MV_TMP/verify.out" >&2 &&
	mv_fail "systemd-analyze verify warns about the units"
echo "ok: systemd-analyze verify accepts memvirtd.socket and memvirtd.service"
