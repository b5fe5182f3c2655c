#!/bin/sh
# The Debian package: built by dpkg-buildpackage from a copy of the source tree, installed, used
# for the demo job with every memvirt program and library coming from /usr, and purged without a
# trace. Needs root; restores the host on any exit.
set -eu
. "$(dirname "$0")/lib.sh"
# The package's own build runs the test suite; building and installing it again there would recurse.
[ -z "${MV_PACKAGE_BUILD:-}" ] || mv_skip "inside the package's own build (debian/rules)"
# The package is built from a distribution copy with its own flags, whatever the tree under test:
# one run, the plain build's, covers it. A sanitizer build or distcheck's read-only copy would
# build the same package again, minutes each.
[ -z "${MV_SANITIZER:-}" ] || mv_skip "the plain build's run builds and tests the package"
[ -w "$MV_TOP_SRCDIR" ] || mv_skip "a read-only source tree (make distcheck): the plain build's run builds and tests the package"
[ "$(id -u)" = 0 ] || mv_skip "installing a package needs root"
command -v dpkg-buildpackage >/dev/null || mv_skip "dpkg-buildpackage is missing (apt-get install dpkg-dev)"
command -v dh >/dev/null || mv_skip "debhelper is missing (apt-get install debhelper)"
command -v apt-get >/dev/null || mv_skip "apt-get is missing"
# A memvirt already on this host, packaged or not, is left alone: the test would replace, then purge it.
if dpkg-query -W -f='${Status}' memvirt 2>/dev/null | grep -q 'installed'; then
	mv_skip "the memvirt package is installed on this host"
fi
for f in /usr/bin/memvirt /usr/sbin/memvirtd /var/log/memvirt /var/log/private/memvirt \
		/etc/systemd/system/sockets.target.wants/memvirtd.socket; do
	[ ! -e "$f" ] && [ ! -L "$f" ] || mv_skip "$f exists on this host; the package would take it over"
done
mv_need_mvtrain
simdir=$MV_TOP_BUILDDIR/tests/simcuda
[ -r "$simdir/libcuda.so.1" ] || mv_fail "$simdir/libcuda.so.1 is not built"
cuda=$(sed -n 's/^CUDA_DIR = //p' "$MV_TOP_BUILDDIR/Makefile")
version=$(sed -n 's/^#define PACKAGE_VERSION "\(.*\)"$/\1/p' "$MV_TOP_BUILDDIR/config.h")
[ -n "$cuda" ] && [ -n "$version" ] || mv_fail "no CUDA_DIR in the Makefile or PACKAGE_VERSION in config.h"
# The make that runs this test must not pass its options (TESTS=, -j) to the builds below.
unset MAKEFLAGS MFLAGS MAKELEVEL
export DEBIAN_FRONTEND=noninteractive

MV_TMP=$(mktemp -d "${TMPDIR:-/tmp}/mv-e2e.XXXXXX") || mv_fail "mktemp failed"
daemon_pid=
made_logdir=
made_policy=
cleanup() {
	[ -z "$daemon_pid" ] || kill "$daemon_pid" 2>/dev/null || true
	if dpkg-query -W -f='${Status}' memvirt 2>/dev/null | grep -q 'installed\|config-files\|half'; then
		echo "cleanup: purging the memvirt package" >&2
		apt-get purge -y -q -o DPkg::Lock::Timeout=300 memvirt >/dev/null 2>&1 || dpkg -P memvirt >/dev/null 2>&1 || true
	fi
	rm -rf /var/log/private/memvirt
	[ ! -L /var/log/memvirt ] || rm -f /var/log/memvirt
	[ -z "$made_logdir" ] || rmdir /var/log/private 2>/dev/null || true
	[ -z "$made_policy" ] || rm -f /usr/sbin/policy-rc.d
	rm -rf "$MV_TMP"
}
trap cleanup EXIT
trap 'exit 1' HUP INT TERM

# Where systemd runs, a package's postinst starts its units; policy-rc.d (exit 101) forbids it.
if [ -d /run/systemd/system ] && [ ! -e /usr/sbin/policy-rc.d ]; then
	printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
	chmod 755 /usr/sbin/policy-rc.d
	made_policy=1
fi

# 1. A copy of the source tree, as a release tarball has it, and the package built from it.
top=$MV_TMP/memvirt-$version
make -s -C "$MV_TOP_BUILDDIR" distdir distdir="$top" >"$MV_TMP/distdir.log" 2>&1 ||
	{ cat "$MV_TMP/distdir.log" >&2; mv_fail "make distdir failed"; }
chmod -R u+w "$top"
debversion=$(cd "$top" && dpkg-parsechangelog -S Version)
[ "${debversion%-*}" = "$version" ] ||
	mv_fail "debian/changelog is at $debversion, configure.ac's AC_INIT at $version"
start=$(date +%s)
(cd "$top" && CUDA_HOME=$cuda DEB_BUILD_PROFILES=nocheck \
	DEB_BUILD_OPTIONS="nocheck noddebs parallel=$(nproc)" dpkg-buildpackage -us -uc -b) \
	>"$MV_TMP/build.log" 2>&1 || { tail -n 40 "$MV_TMP/build.log" >&2; mv_fail "dpkg-buildpackage failed"; }
arch=$(dpkg --print-architecture)
deb=$MV_TMP/memvirt_${debversion}_$arch.deb
[ -r "$deb" ] || mv_fail "dpkg-buildpackage made no $deb"
echo "ok: built $(basename "$deb") in $(($(date +%s) - start)) s"

# 2. Installed with no systemd running: the postinst enables the socket and starts nothing.
apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=300 "$deb" >"$MV_TMP/install.log" 2>&1 ||
	{ cat "$MV_TMP/install.log" >&2; mv_fail "apt-get install $deb failed"; }
dpkg-query -W -f='${Status} ${Version}\n' memvirt | grep -qx "install ok installed $debversion" ||
	mv_fail "memvirt $debversion is not installed: $(dpkg-query -W -f='${Status} ${Version}' memvirt)"
dpkg -L memvirt >"$MV_TMP/files"
echo "ok: installed$( [ -d /run/systemd/system ] || echo ', with no systemd running')"

# 3. Every file where it belongs, byte for byte what the source tree has.
ma=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
lib=/usr/lib/$ma/memvirt/libmemvirt.so
unitdir=$(sed -n 's|/memvirtd\.socket$||p' "$MV_TMP/files" | grep '/systemd/system$') ||
	mv_fail "the package has no memvirtd.socket"
for f in /usr/bin/memvirt /usr/sbin/memvirtd; do
	[ -x "$f" ] || mv_fail "$f is not installed"
done
for f in "$lib" "$unitdir/memvirtd.service" "$unitdir/memvirtd.socket"; do
	[ -r "$f" ] || mv_fail "$f is not installed"
done
for f in /usr/bin/memvirt /usr/sbin/memvirtd "$lib"; do
	env -u LD_LIBRARY_PATH ldd "$f" >"$MV_TMP/ldd" 2>&1 || { cat "$MV_TMP/ldd" >&2; mv_fail "ldd $f failed"; }
	! grep -q 'not found' "$MV_TMP/ldd" || { cat "$MV_TMP/ldd" >&2; mv_fail "$f needs a library that is not installed"; }
done
same() { cmp -s "$1" "$2" || mv_fail "$2 differs from $1"; }
same "$MV_TOP_SRCDIR/daemon/memvirtd.socket" "$unitdir/memvirtd.socket"
sed 's|@sbindir[@]|/usr/sbin|g' "$MV_TOP_SRCDIR/daemon/memvirtd.service.in" >"$MV_TMP/memvirtd.service"
same "$MV_TMP/memvirtd.service" "$unitdir/memvirtd.service"
for m in memvirt.1 memvirtd.8 memvirt.json.5 memvirt-policies.7; do
	gz=/usr/share/man/man${m##*.}/$m.gz
	[ -r "$gz" ] || mv_fail "$gz is not installed"
	gzip -dc "$gz" >"$MV_TMP/$m"
	same "$MV_TOP_SRCDIR/man/$m" "$MV_TMP/$m"
done
same "$MV_TOP_SRCDIR/completions/memvirt" /usr/share/bash-completion/completions/memvirt
same "$MV_TOP_SRCDIR/completions/_memvirt" /usr/share/zsh/vendor-completions/_memvirt
example=/usr/share/doc/memvirt/examples/memvirt.json
same "$MV_TOP_SRCDIR/examples/memvirt.json" "$example"
[ -r /usr/share/doc/memvirt/copyright ] || mv_fail "/usr/share/doc/memvirt/copyright is not installed"
env -u LD_LIBRARY_PATH /usr/bin/memvirt config check "$example" >"$MV_TMP/check.out" 2>&1 ||
	{ cat "$MV_TMP/check.out" >&2; mv_fail "the installed memvirt rejects the installed example"; }
env -u LD_LIBRARY_PATH /usr/bin/memvirt --version | grep -qx "memvirt $version" ||
	mv_fail "/usr/bin/memvirt --version does not say memvirt $version"
# Enabled as deb-systemd-helper enables a unit where systemd does not run: the symlink it makes.
wants=/etc/systemd/system/sockets.target.wants/memvirtd.socket
[ "$(readlink "$wants")" = "$unitdir/memvirtd.socket" ] || mv_fail "memvirtd.socket is not enabled ($wants)"
echo "ok: binaries, library, units, man pages, completions and example installed; memvirtd.socket enabled"

# 4. The demo job (scripts/demo), with memvirt, memvirtd and libmemvirt.so from /usr and only the
# simulated GPU and the workload from the build tree.
SIMCUDA_GRANULARITY=4KiB MEMVIRT_SLAB_THRESHOLD=4KiB
export SIMCUDA_GRANULARITY MEMVIRT_SLAB_THRESHOLD
args="--model resnet50 --batch 2 --scale 0.125 --steps 12"
SIMCUDA_MEM=64GiB
export SIMCUDA_MEM
mv_run ample $args
mv_expect_ok ample 12
peak=$(mv_peak ample)
sum=$(mv_checksum ample)
third=$(((peak + peak / 4) / 3))
SIMCUDA_MEM=$third
mv_run plain $args
[ "$MV_RC" != 0 ] && grep -q CUDA_ERROR_OUT_OF_MEMORY "$MV_TMP/plain.out" "$MV_TMP/plain.err" ||
	mv_fail_run plain "expected CUDA_ERROR_OUT_OF_MEMORY on $third bytes"
sock=$MV_TMP/memvirtd.sock
env -u LD_LIBRARY_PATH /usr/bin/memvirt daemon start --socket "$sock" >"$MV_TMP/start.out" 2>&1 ||
	{ cat "$MV_TMP/start.out" >&2; mv_fail "memvirt daemon start failed"; }
daemon_pid=$(sed -n 's/^memvirtd started (pid \([0-9]*\)).*/\1/p' "$MV_TMP/start.out")
[ -n "$daemon_pid" ] || { cat "$MV_TMP/start.out" >&2; mv_fail "memvirt daemon start named no pid"; }
[ "$(readlink "/proc/$daemon_pid/exe")" = /usr/sbin/memvirtd ] ||
	mv_fail "the daemon runs $(readlink "/proc/$daemon_pid/exe"), not /usr/sbin/memvirtd"
# The job records which library memvirt run preloads, then runs the workload.
MV_RC=0
(cd "$MV_TMP" && env -u LD_LIBRARY_PATH -u MEMVIRT_LIBRARY MEMVIRT_LOG=info \
	MEMVIRT_SIMCUDA_DIR="$simdir" /usr/bin/memvirt run --simulate --socket "$sock" --budget 90% -- \
	sh -c 'printf "%s\n" "$LD_PRELOAD" >preload; exec "$0" "$@"' "$MVTRAIN" $args) \
	>"$MV_TMP/memvirt.out" 2>"$MV_TMP/memvirt.err" || MV_RC=$?
mv_expect_ok memvirt 12
[ "$(mv_checksum memvirt)" = "$sum" ] || mv_fail_run memvirt "checksum $(mv_checksum memvirt), expected $sum"
[ "$(cat "$MV_TMP/preload")" = "$lib" ] || mv_fail "memvirt run preloaded $(cat "$MV_TMP/preload"), not $lib"
outs=$(sed -n 's/.* page-outs \([0-9]*\) .*/\1/p' "$MV_TMP/memvirt.err")
[ "${outs:-0}" -gt 0 ] || mv_fail_run memvirt "the job paged nothing out"
env -u LD_LIBRARY_PATH /usr/bin/memvirt daemon stop --socket "$sock" >/dev/null ||
	mv_fail "memvirt daemon stop failed"
daemon_pid=
echo "ok: the demo job ran on $third bytes under the installed memvirt, $outs page-outs, checksum $sum"

# 5. Purged, after leaving what memvirtd's dynamic user would have (its LogsDirectory=): nothing
# stays behind.
[ -d /var/log/private ] || { mkdir -m 0700 /var/log/private; made_logdir=1; }
mkdir /var/log/private/memvirt
echo log >/var/log/private/memvirt/memvirtd.log
ln -s private/memvirt /var/log/memvirt
apt-get purge -y -q -o DPkg::Lock::Timeout=300 memvirt >"$MV_TMP/purge.log" 2>&1 ||
	{ cat "$MV_TMP/purge.log" >&2; mv_fail "apt-get purge memvirt failed"; }
! dpkg-query -W -f='${Status}' memvirt 2>/dev/null | grep -q 'installed\|config-files' ||
	mv_fail "memvirt is still known to dpkg: $(dpkg-query -W -f='${Status}' memvirt)"
while read -r f; do
	if [ -d "$f" ]; then
		# A directory may stay only while another package owns it or something else is in it.
		dpkg-query -S "$f" >/dev/null 2>&1 || [ -n "$(ls -A "$f")" ] || mv_fail "purge left the empty $f"
	elif [ -e "$f" ] || [ -L "$f" ]; then
		mv_fail "purge left $f"
	fi
done <"$MV_TMP/files"
for f in /usr/lib/$ma/memvirt /usr/share/doc/memvirt /var/log/memvirt /var/log/private/memvirt "$wants"; do
	[ ! -e "$f" ] && [ ! -L "$f" ] || mv_fail "purge left $f"
done
left=$(find /etc/systemd /var/lib/systemd -name '*memvirtd*' 2>/dev/null)
[ -z "$left" ] || mv_fail "purge left the units' state: $left"
echo "ok: purged; no file, log directory or unit state of memvirt is left"
