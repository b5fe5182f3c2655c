# A configuration with an error is refused with one line, FILE:LINE:COL: KEY.PATH: MESSAGE (with a
# suggestion for a near-miss key), by 'memvirt config check' (exit 1), by memvirtd --config (which
# exits 1 and never listens), and by 'memvirt run --config' (exit 2): every case of
# tests/data/invalid/config and a few written here. A running daemon whose file has become invalid
# keeps its configuration on 'memvirt config reload' (which prints the error and exits 1) and on
# SIGHUP, and goes on serving; a valid file is taken by both.
. "$(dirname "$0")/lib.sh"
MEMVIRT=$MV_TOP_BUILDDIR/cli/memvirt
MEMVIRTD=$MV_TOP_BUILDDIR/daemon/memvirtd
MVSOCK=$MV_TOP_BUILDDIR/tests/e2e/mvsock
INVALID=$MV_TOP_SRCDIR/tests/data/invalid/config
for p in "$MEMVIRT" "$MEMVIRTD" "$MVSOCK"; do
	[ -x "$p" ] || mv_fail "$p is not built"
done
unset MEMVIRT_SOCKET LD_PRELOAD

mv_tmpdir
chmod 700 "$MV_TMP"
T=$MV_TMP
S=$T/memvirtd.sock
DAEMON=
JOBS=


cleanup() {
	exec 3>&-
	mv_stop_pids $JOBS $DAEMON
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

# refused FILE LINE: every way in refuses FILE with exactly LINE.
refused() {
	f=$1 line=$2
	rc=0
	timeout 60 "$MEMVIRT" config check "$f" >"$T/check.out" 2>"$T/check.err" || rc=$?
	[ "$rc" -eq 1 ] || mv_fail "memvirt config check $f: exit $rc, expected 1"
	[ "$(cat "$T/check.err")" = "$line" ] ||
		mv_fail "memvirt config check $f said '$(cat "$T/check.err")', expected '$line'"
	[ -s "$T/check.out" ] && mv_fail "memvirt config check $f printed on stdout: $(cat "$T/check.out")"

	rm -f "$T/refused.sock"
	rc=0
	timeout 60 "$MEMVIRTD" --config "$f" --socket "$T/refused.sock" --log-level info \
		>"$T/memvirtd.out" 2>"$T/memvirtd.err" || rc=$?
	[ "$rc" -eq 1 ] || mv_fail "memvirtd --config $f: exit $rc, expected 1: $(cat "$T/memvirtd.err")"
	[ "$(grep -c . "$T/memvirtd.err")" -eq 1 ] && grep -qF " error: $line" "$T/memvirtd.err" ||
		mv_fail "memvirtd --config $f logged '$(cat "$T/memvirtd.err")', expected one error line '$line'"
	grep -q 'listening' "$T/memvirtd.err" && mv_fail "memvirtd --config $f started listening"
	[ -e "$T/refused.sock" ] && mv_fail "memvirtd --config $f made its socket"

	rc=0
	timeout 60 "$MEMVIRT" run --config "$f" --socket "$T/refused.sock" -- sh -c "touch '$T/ran'" \
		>"$T/run.out" 2>"$T/run.err" || rc=$?
	[ "$rc" -eq 2 ] || mv_fail "memvirt run --config $f: exit $rc, expected 2"
	grep -qF "memvirt run: $line" "$T/run.err" || mv_fail "memvirt run --config $f said '$(cat "$T/run.err")'"
	[ -e "$T/ran" ] && mv_fail "memvirt run --config $f ran the job"
	return 0
}

# Each kind of error the format has, by the name of its case in tests/data/invalid/config.
for c in unknown-key-top unknown-key-job unknown-key-dotted-job unknown-key-no-suggestion \
	weight-string log-level-wrong-type min-wrong-type budget-number \
	min-bad-size budget-bad-size budget-bad-percent budget-over-100-percent \
	log-level-bad weight-zero weight-too-big policy-unknown \
	syntax-trailing-comma syntax-truncated syntax-bare-word syntax-empty; do
	[ -f "$INVALID/$c.json" ] && [ -f "$INVALID/$c.err" ] || mv_fail "no case $c in $INVALID"
done
n=0
for f in "$INVALID"/*.json; do
	c=${f%.json}
	[ -f "$c.err" ] || mv_fail "$f has no .err"
	refused "$f" "$(sed "s|^FILE|$f|" "$c.err")"
	n=$((n + 1))
done
echo "$n cases of $INVALID refused by config check, memvirtd and run"

# A few written here, independent of the data files.
printf '{\n  "daemon": { "log_level": "info" },\n  "device": { "budegt": "90%%" }\n}\n' >"$T/typo.json"
refused "$T/typo.json" "$T/typo.json:3:15: device.budegt: unknown key 'budegt' (did you mean 'budget'?)"
printf '{\n  "jobs": {\n    "default": { "weight": 1 },\n    "e2e.job": { "min": "1GiB", "weight": "heavy" }\n  }\n}\n' \
	>"$T/type.json"
refused "$T/type.json" "$T/type.json:4:43: jobs.e2e.job.weight: expected a whole number from 1 to 1000, got a string"
printf '{ "jobs": { "default": { "weight": 5000 } } }\n' >"$T/range.json"
refused "$T/range.json" "$T/range.json:1:36: jobs.default.weight: weight 5000 is out of range 1..1000"
printf '{ "library": { "slab_threshold": "lots" } }\n' >"$T/size.json"
refused "$T/size.json" "$T/size.json:1:34: library.slab_threshold: 'lots' is not a size such as 4GiB"
printf '{ "daemon": { "log_level": "loud" } }\n' >"$T/level.json"
refused "$T/level.json" "$T/level.json:1:28: daemon.log_level: 'loud' is not a log level: debug, info, warn or error"
printf '{ "jobs": { "default": { "policy": "fifo" } } }\n' >"$T/policy.json"
refused "$T/policy.json" "$T/policy.json:1:36: jobs.default.policy: unknown policy 'fifo'; the known policies are lru, vdnn-all, vdnn-conv, mmcnn and auto"
printf '{ "device": { "budget": "101%%" } }\n' >"$T/percent.json"
refused "$T/percent.json" "$T/percent.json:1:25: device.budget: '101%' is more than 100%"
printf '{ "device": { "budget": "90%%" }\n' >"$T/syntax.json"
refused "$T/syntax.json" "$T/syntax.json:2:1: '}' expected near end of file"
rc=0
timeout 60 "$MEMVIRT" config check "$T/absent.json" 2>"$T/absent.err" || rc=$?
[ "$rc" -eq 1 ] && grep -q "^$T/absent.json: " "$T/absent.err" || mv_fail "config check of a missing file: exit $rc, '$(cat "$T/absent.err")'"
rc=0
timeout 60 "$MEMVIRT" daemon start --socket "$S" --config "$T/typo.json" >/dev/null 2>"$T/start.err" || rc=$?
[ "$rc" -ne 0 ] || mv_fail "memvirt daemon start --config with an error started a daemon"
grep -qF "$T/typo.json:3:15: device.budegt" "$T/start.err" || mv_fail "memvirt daemon start said '$(cat "$T/start.err")'"
[ -e "$S" ] && mv_fail "memvirt daemon start --config with an error made the socket"

# Reload: a daemon with half of each device to share, and a session that asks for all of it.
C=$T/memvirt.json
printf '{ "device": { "budget": "50%%" } }\n' >"$C"
out=$(timeout 60 "$MEMVIRT" daemon start --socket "$S" --config "$C" --log-file "$T/memvirtd.log" --log-level info) ||
	mv_fail "memvirt daemon start --config $C failed"
DAEMON=$(echo "$out" | sed -n 's/^memvirtd started (pid \([0-9]*\)).*/\1/p')
[ -n "$DAEMON" ] || mv_fail "memvirt daemon start printed no pid: $out"
mkfifo "$T/hello.in"
"$MVSOCK" "$S" hello --total 1000000 --budget 1000000 --job e2e-config <"$T/hello.in" >"$T/hello.out" 2>&1 &
JOBS=$!
exec 3>"$T/hello.in"

# grant_is WANT: the session's grant in the daemon's stats is WANT.
grant_is() {
	timeout 60 "$MEMVIRT" stats --json --socket "$S" >"$T/stats.json" || mv_fail "memvirt stats failed"
	g=$("$MVSOCK" flat <"$T/stats.json" | sed -n 's/^sessions\.0\.grant //p')
	[ "$g" = "$1" ] || mv_fail "the session's grant is '$g', expected $1: $(cat "$T/stats.json")"
}
# hello_says LINE: the session has been sent LINE (waits up to 60 s).
hello_says() {
	n=0
	until grep -qx "$1" "$T/hello.out" 2>/dev/null; do
		n=$((n + 1))
		[ "$n" -lt 600 ] || mv_fail "the session never got '$1': $(cat "$T/hello.out")"
		sleep 0.1
	done
}
hello_says "welcome 1 500000"
grant_is 500000

# reload_refused: the file at $C is invalid now; reload fails with its error, the daemon keeps its
# configuration and serves.
printf '{\n  "device": { "budget": "25%%" },\n  "jobs": { "default": { "wieght": 2 } }\n}\n' >"$C"
bad="$C:3:26: jobs.default.wieght: unknown key 'wieght' (did you mean 'weight'?)"
rc=0
timeout 60 "$MEMVIRT" config reload --socket "$S" >"$T/reload.out" 2>"$T/reload.err" || rc=$?
echo "memvirt config reload (invalid file) -> exit $rc"
[ "$rc" -eq 1 ] || mv_fail "memvirt config reload of an invalid file: exit $rc, expected 1"
[ "$(cat "$T/reload.err")" = "memvirt config reload: $bad" ] ||
	mv_fail "memvirt config reload said '$(cat "$T/reload.err")', expected the file's error '$bad'"
alive "$DAEMON" || mv_fail "the daemon died on a reload of an invalid file"
grant_is 500000
"$MVSOCK" "$S" request '{"cmd": "config.reload"}' >"$T/request.out" && mv_fail "a reload request of an invalid file succeeded"
grep -qF "$bad" "$T/request.out" || mv_fail "the reload response does not carry the error: $(cat "$T/request.out")"

kill -HUP "$DAEMON"
n=0
until grep -qF "config reload failed, keeping the old config: $bad" "$T/memvirtd.log"; do
	n=$((n + 1))
	[ "$n" -lt 600 ] || mv_fail "no refusal of the invalid file in the log after SIGHUP: $(tail -n 5 "$T/memvirtd.log")"
	sleep 0.1
done
echo "SIGHUP (invalid file): refused, as the log says"
alive "$DAEMON" || mv_fail "the daemon died on SIGHUP with an invalid file"
grant_is 500000
timeout 60 "$MEMVIRT" daemon status --socket "$S" >/dev/null || mv_fail "memvirt daemon status failed after the refused reloads"
grep -qx 'grant [0-9]*' "$T/hello.out" && mv_fail "the session was sent a new grant by a refused reload"

# A valid file is taken, by either way.
printf '{ "device": { "budget": "25%%" } }\n' >"$C"
timeout 60 "$MEMVIRT" config reload --socket "$S" >/dev/null || mv_fail "memvirt config reload of a valid file failed"
hello_says "grant 250000"
grant_is 250000
printf '{ "device": { "budget": "40%%" } }\n' >"$C"
kill -HUP "$DAEMON"
hello_says "grant 400000"
grant_is 400000
echo "valid files: reload and SIGHUP change the grant to 250000, then 400000"

exec 3>&-
timeout 60 "$MEMVIRT" daemon stop --socket "$S" >/dev/null || mv_fail "memvirt daemon stop failed"
DAEMON=
exit 0
