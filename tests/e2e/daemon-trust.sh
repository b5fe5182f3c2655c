# A second user attacks a shared daemon (memvirtd(8) "Trust"), on a socket handed over as systemd's
# memvirtd.socket does, with raw library sessions (mvsock hello) run as that user:
# - weight 4294967295 against root's co-tenant: the weight is capped at device.weight_max (1000);
# - a job name copying an administrator's job with a min: the min is not given, whether the entry
#   names root's uid or no uid at all; root's own job of that name does get it;
# - a device total of 2^62: the device keeps the total of its first process, or the driver's;
# - a job name that is not UTF-8, then root's memvirt stats: memvirtd lives and shows it cleaned;
# - escape codes and a newline in a job name: neither reaches root's terminal or memvirtd's log.
# Needs root and useradd: exit 77 (SKIP) otherwise.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/users.sh"
MEMVIRT=$MV_TOP_BUILDDIR/cli/memvirt
MEMVIRTD=$MV_TOP_BUILDDIR/daemon/memvirtd
MVSOCK=$MV_TOP_BUILDDIR/tests/e2e/mvsock
for p in "$MEMVIRT" "$MEMVIRTD" "$MVSOCK"; do
	[ -x "$p" ] || mv_fail "$p is not built"
done
unset MEMVIRT_SOCKET LD_PRELOAD SIMCUDA_MEM

mv_users_need
mv_tmpdir
chmod 700 "$MV_TMP"
T=$MV_TMP
DAEMON=
JOBS=
PUB=

cleanup() {
	exec 3>&- 4>&- 5>&-
	mv_stop_pids $JOBS $DAEMON
	[ -n "$PUB" ] && rm -rf "$PUB"
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

# The attacker: a system user kept between runs, made here when it is missing.
USER2=mvtest
mv_user_keep "$USER2"
UID2=$(id -u "$USER2")
as_user() {
	mv_as "$USER2" "$@"
}
mv_user_check "$USER2"

PUB=$(mktemp -d "${TMPDIR:-/tmp}/mv-e2e-pub.XXXXXX") || mv_fail "mktemp failed"
chmod 755 "$PUB"
S=$PUB/memvirtd.sock

# The administrator's jobs: one for root's uid, one by name only. The simulated driver is on
# LD_LIBRARY_PATH with a device of 8 GiB: memvirtd asks it for that device's memory.
cat >"$T/memvirt.json" <<'JSON'
{
  "device": { "budget": "50%" },
  "jobs": {
    "admin-train": { "uid": 0, "min": "3MiB" },
    "named-train": { "min": "3MiB" }
  }
}
JSON
SIMCUDA_MEM=8GiB "$MVSOCK" "$S" serve "$MEMVIRTD" --config "$T/memvirt.json" --log-file "$T/memvirtd.log" \
	--log-level info &
DAEMON=$!
n=0
until timeout 60 "$MEMVIRT" daemon status --socket "$S" >/dev/null 2>&1; do
	alive "$DAEMON" || mv_fail "the shared daemon exited: $(cat "$T/memvirtd.log" 2>/dev/null)"
	n=$((n + 1))
	[ "$n" -lt 600 ] || mv_fail "the shared daemon did not answer within 60 s"
	sleep 0.1
done

# session FD WHO NAME ARG...: a library session as WHO (root or user) with mvsock hello ARG...,
# its standard input on descriptor FD, its output in $T/NAME.out; waits for its WELCOME.
session() {
	fd=$1 who=$2 name=$3
	shift 3
	mkfifo "$T/$name.in"
	if [ "$who" = user ]; then
		as_user "$MVSOCK" "$S" hello "$@" <"$T/$name.in" >"$T/$name.out" 2>&1 &
	else
		"$MVSOCK" "$S" hello "$@" <"$T/$name.in" >"$T/$name.out" 2>&1 &
	fi
	JOBS="$JOBS $!"
	eval "${name}_pid=$!"
	eval "exec $fd>\"\$T/\$name.in\""
	waitfor "$name" '^welcome '
}

# waitfor NAME REGEX: waits up to 60 s for a line of $T/NAME.out to match.
waitfor() {
	n=0
	until grep -q "$2" "$T/$1.out" 2>/dev/null; do
		alive "$DAEMON" || mv_fail "memvirtd died; its log: $(tail -n 5 "$T/memvirtd.log")"
		n=$((n + 1))
		[ "$n" -lt 600 ] || mv_fail "$1 never printed '$2': $(cat "$T/$1.out")"
		sleep 0.1
	done
}

# grant NAME: the last grant sent to session NAME.
grant() {
	sed -n 's/^welcome [0-9]* //p; s/^grant //p' "$T/$1.out" | tail -n 1
}

# expect_grant NAME BYTES: session NAME's grant becomes BYTES (within 60 s), and stays it.
expect_grant() {
	n=0
	until [ "$(grant "$1")" = "$2" ]; do
		n=$((n + 1))
		[ "$n" -lt 600 ] || mv_fail "$1's grant is $(grant "$1"), expected $2: $(cat "$T/$1.out")"
		sleep 0.1
	done
}

# end FD NAME: ends session NAME (its standard input closes) and waits for mvsock to exit.
end() {
	eval "exec $1>&-"
	eval "pid=\$${2}_pid"
	n=0
	while alive "$pid"; do
		n=$((n + 1))
		[ "$n" -lt 600 ] || mv_fail "session $2 did not end"
		sleep 0.1
	done
}

# stats FILE: root's memvirt stats --json, flattened.
stats() {
	timeout 60 "$MEMVIRT" stats --json --socket "$S" >"$T/stats.json" 2>"$T/stats.err" ||
		mv_fail "root's memvirt stats failed: $(cat "$T/stats.err")"
	"$MVSOCK" flat <"$T/stats.json" >"$1"
}

# field FLAT JOB KEY: KEY of the session of job JOB in flattened stats.
field() {
	awk -v job="$2" -v f="$3" '
		{ split($1, k, ".") }
		k[1] == "sessions" && k[3] == "job" && substr($0, length($1) + 2) == job { mine[k[2]] = 1 }
		k[1] == "sessions" && k[3] == f { val[k[2]] = substr($0, length($1) + 2) }
		END { for (i in mine) print val[i] }' "$1"
}

MIB=1048576

# 1. Weight 4294967295. Root's job alone on a device of 8 MiB (budget 4 MiB) is granted the 4 MiB.
# With the attacker's weight capped at 1000, the co-tenant keeps 4194304 / 1001 of it (rounded
# down, plus the byte the rounding leaves): 4191 bytes, where the uncapped weight left it 1.
session 3 root wvictim --uuid trust-weight --job victim --total $((8 * MIB)) --budget $((8 * MIB))
expect_grant wvictim $((4 * MIB))
session 4 user wattack --uuid trust-weight --job attack --total $((8 * MIB)) --budget $((8 * MIB)) \
	--weight 4294967295
expect_grant wvictim 4191
expect_grant wattack $((4 * MIB - 4191))
stats "$T/w.flat"
[ "$(field "$T/w.flat" attack weight)" = 1000 ] ||
	mv_fail "the attacker's weight is $(field "$T/w.flat" attack weight), expected the cap 1000"
end 4 wattack
expect_grant wvictim $((4 * MIB))
end 3 wvictim
echo "weight 4294967295: capped at 1000, the co-tenant keeps 4191 of 4194304 bytes"

# 2. A name copying an administrator's job with a min of 3 MiB. Each of two jobs on a device of
# 8 MiB (budget 4 MiB) gets 2 MiB; with a min, the named job would take 3.5 MiB.
for job in admin-train named-train; do
	session 3 root mvictim --uuid "trust-$job" --job victim --total $((8 * MIB)) --budget $((8 * MIB))
	session 4 user mattack --uuid "trust-$job" --job "$job" --total $((8 * MIB)) --budget $((8 * MIB))
	expect_grant mvictim $((2 * MIB))
	expect_grant mattack $((2 * MIB))
	stats "$T/m.flat"
	[ "$(field "$T/m.flat" "$job" min)" = 0 ] ||
		mv_fail "uid $UID2's '$job' has min $(field "$T/m.flat" "$job" min), expected 0"
	end 4 mattack
	end 3 mvictim
	rm -f "$T/mvictim.in" "$T/mattack.in"
	echo "user $UID2's job named '$job' gets no min: 2 MiB each"
done
# Root's own admin-train does get its min: 3 MiB, then half of the 1 MiB left.
session 3 root avictim --uuid trust-admin-root --job victim --total $((8 * MIB)) --budget $((8 * MIB))
session 4 root admin --uuid trust-admin-root --job admin-train --total $((8 * MIB)) --budget $((8 * MIB))
expect_grant avictim $((MIB / 2))
expect_grant admin $((3 * MIB + MIB / 2))
end 4 admin
end 3 avictim

# 3. A total of 2^62 bytes. On a device no driver lists, the first process's 80 GiB stands: the
# budget stays 40 GiB, and root's job asking for 80 GiB keeps 39 GiB beside the attacker's 1 GiB.
GIB=$((1024 * MIB))
session 3 root tvictim --uuid trust-total --job victim --total $((80 * GIB)) --budget $((80 * GIB))
expect_grant tvictim $((40 * GIB))
session 4 user tattack --uuid trust-total --job attack --total $((1 << 62)) --budget $((GIB))
expect_grant tvictim $((39 * GIB))
expect_grant tattack $((GIB))
stats "$T/t.flat"
grep -qx "devices.0.total $((80 * GIB))" "$T/t.flat" && grep -qx "devices.0.budget $((40 * GIB))" "$T/t.flat" &&
	grep -qx "devices.0.total_from first process" "$T/t.flat" ||
	mv_fail "the device after a claim of 2^62: $(grep '^devices' "$T/t.flat")"
[ "$(field "$T/t.flat" attack budget)" = $((GIB)) ] || mv_fail "the attacker's budget is $(field "$T/t.flat" attack budget)"
end 4 tattack
end 3 tvictim
# On the simulated driver's device, the driver's 8 GiB stands even for its first process.
session 3 user sattack --uuid simcuda-device-0 --job attack --total $((1 << 62)) --budget $((1 << 62))
expect_grant sattack $((4 * GIB))
stats "$T/s.flat"
grep -qx "devices.0.total $((8 * GIB))" "$T/s.flat" && grep -qx "devices.0.total_from driver" "$T/s.flat" ||
	mv_fail "the simulated device after a claim of 2^62: $(grep '^devices' "$T/s.flat")"
end 3 sattack
echo "a total of 2^62: the device keeps 80 GiB (first process) or 8 GiB (driver)"

# 4. Job names that are not UTF-8: invalid bytes, and a name cut in the middle of a character.
bad=$(printf 'caf\303\251-\377\376-\344\270')
session 3 user utf8 --uuid trust-utf8 --job "$bad"
long=$(printf '%032d' 0 | sed 's/0/é/g')
session 4 user cut --uuid trust-utf8 --job "$long"
stats "$T/u.flat"
alive "$DAEMON" || mv_fail "memvirtd died at memvirt stats"
[ -n "$(field "$T/u.flat" 'café-??-' pid)" ] || mv_fail "no session named 'café-??-': $(grep job "$T/u.flat")"
[ -n "$(field "$T/u.flat" "$(printf '%031d' 0 | sed 's/0/é/g')" pid)" ] ||
	mv_fail "no session named with 31 é: $(grep job "$T/u.flat")"
timeout 60 "$MEMVIRT" stats --socket "$S" >"$T/u.table" 2>&1 || mv_fail "root's stats table failed: $(cat "$T/u.table")"
grep -q '^ *[0-9]* *café-??- ' "$T/u.table" || mv_fail "the table does not show 'café-??-': $(cat "$T/u.table")"
end 4 cut
end 3 utf8
echo "names that are not UTF-8: memvirtd lives, and shows them cleaned"

# 5. Escape codes and a newline in a name.
esc=$(printf 'x\033[2J\033[31mred\nFORGED LINE')
session 3 user esc --uuid trust-esc --job "$esc"
stats "$T/e.flat"
[ -n "$(field "$T/e.flat" 'x?[2J?[31mred?FORGED LINE' pid)" ] || mv_fail "no cleaned escape name: $(grep job "$T/e.flat")"
timeout 60 "$MEMVIRT" stats --socket "$S" >"$T/e.table" 2>&1 || mv_fail "root's stats table failed"
grep -q "$(printf '\033')" "$T/e.table" && mv_fail "an escape code reached the stats table: $(cat -v "$T/e.table")"
grep -q '^ *[0-9]* *x?\[2J?\[31mred?FORGED  ' "$T/e.table" || mv_fail "the table shows: $(cat -v "$T/e.table")"
timeout 60 "$MEMVIRT" stats --prometheus --socket "$S" >"$T/e.prom" 2>&1 || mv_fail "root's prometheus stats failed"
grep -q "$(printf '\033')" "$T/e.prom" && mv_fail "an escape code reached the Prometheus text"
grep -q '^FORGED' "$T/e.prom" && mv_fail "a newline in a name forged a Prometheus line"
end 3 esc
grep -q "$(printf '\033')" "$T/memvirtd.log" && mv_fail "an escape code reached the log: $(cat -v "$T/memvirtd.log")"
grep -q '^FORGED' "$T/memvirtd.log" && mv_fail "a name forged a log line: $(grep -n '^FORGED' "$T/memvirtd.log")"
grep -q "job 'x?\[2J?\[31mred?FORGED LINE'" "$T/memvirtd.log" || mv_fail "the log does not name the session cleaned"
echo "escape codes and a newline in a name reach neither the table nor the log"

alive "$DAEMON" || mv_fail "memvirtd died"
exit 0
