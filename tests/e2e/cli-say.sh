# What memvirt says when something is wrong: suggestions for mistyped options and actions with the
# "memvirt SUBCMD: " prefix, memvirtd's own reason when 'daemon start' fails, 'stats --watch'
# periods and its output into a pipe, and the warning for a budget of one byte along with the
# line the library prints, at the default log level, when it refuses memory.
. "$(dirname "$0")/lib.sh"
MEMVIRT=$MV_TOP_BUILDDIR/cli/memvirt
[ -x "$MEMVIRT" ] || mv_fail "$MEMVIRT is not built"
mv_need_mvtrain
if [ -n "${MEMVIRT_LIB:-}" ]; then
	MEMVIRT_LIBRARY=$MEMVIRT_LIB
	export MEMVIRT_LIBRARY
fi
unset LD_PRELOAD MEMVIRT_BUDGET MEMVIRT_LOG MEMVIRT_LOG_FILE MEMVIRT_SOCKET MEMVIRT_DAEMON

mv_tmpdir
chmod 700 "$MV_TMP"
T=$MV_TMP

# expect WANT NAME ARGS...: runs memvirt ARGS (at most 60 s), stdout to $T/NAME.out and stderr to
# $T/NAME.err, and fails unless it exits WANT.
expect() {
	x_want=$1 x_name=$2
	shift 2
	rc=0
	timeout 60 "$MEMVIRT" "$@" >"$T/$x_name.out" 2>"$T/$x_name.err" || rc=$?
	echo "memvirt $* -> exit $rc"
	[ "$rc" -eq "$x_want" ] || mv_fail "memvirt $*: exit $rc, expected $x_want: $(cat "$T/$x_name.err")"
}

# said NAME LINE: the command's stderr is exactly LINE.
said() {
	[ "$(cat "$T/$1.err")" = "$2" ] || mv_fail "$1 said '$(cat "$T/$1.err")', expected '$2'"
}

# Mistyped options, by every command that takes them, and actions.
expect 2 opt-run run --budgte 1GiB -- true
said opt-run "memvirt run: unknown option '--budgte'; did you mean '--budget'?"
expect 2 opt-stats stats --jsno
said opt-stats "memvirt stats: unknown option '--jsno'; did you mean '--json'?"
expect 2 opt-daemon daemon status --sokcet "$T/x.sock"
said opt-daemon "memvirt daemon: unknown option '--sokcet'; did you mean '--socket'?"
expect 2 opt-trace trace replay --polcy lru "$T/x.trace"
said opt-trace "memvirt trace: unknown option '--polcy'; did you mean '--policy'?"
expect 2 opt-reload config reload --sockte "$T/x.sock"
said opt-reload "memvirt config reload: unknown option '--sockte'; did you mean '--socket'?"
expect 2 opt-check config check --hlep
said opt-check "memvirt config check: unknown option '--hlep'; did you mean '--help'?"
expect 2 opt-top --verison
said opt-top "memvirt: unknown option '--verison'; did you mean '--version'?"
expect 2 act-config config chekc "$T/x.json"
said act-config "memvirt config: unknown action 'chekc'; did you mean 'check'?"
expect 2 act-trace trace replya "$T/x.trace"
said act-trace "memvirt trace: unknown subcommand 'replya'; did you mean 'replay'? (replay, timeline, plot or info)"
expect 2 ambiguous run --s "$T/x.sock" -- true
said ambiguous "memvirt run: option '--s' is ambiguous; it could be --simulate --socket"
expect 2 novalue run --budget
said novalue "memvirt run: option '--budget' needs a value"
expect 2 novaluerecord run --record
said novaluerecord "memvirt run: option '--record' needs a value"
expect 2 noarg stats --json=yes
said noarg "memvirt stats: option '--json' takes no value"
expect 2 unknown-far stats --frobnicate
said unknown-far "memvirt stats: unknown option '--frobnicate'; 'memvirt stats --help' lists the options"

# daemon start: memvirtd's own reason, on stderr and in the log file.
expect 1 start-bad daemon start --socket "$T/d.sock" --log-level loud
grep -qx "memvirtd: --log-level loud: expected debug, info, warn or error" "$T/start-bad.err" ||
	mv_fail "daemon start hid memvirtd's reason: $(cat "$T/start-bad.err")"
head -n 1 "$T/start-bad.err" | grep -q '^memvirt daemon start: memvirtd exited (status [0-9]*) before it answered:$' ||
	mv_fail "daemon start's own line: $(head -n 1 "$T/start-bad.err")"
mkdir -m 1777 "$T/open"
expect 1 start-dir daemon start --socket "$T/open/d.sock" --log-file "$T/d.log"
grep -q "memvirtd\[[0-9]*\] error: the socket directory $T/open has mode 1777" "$T/start-dir.err" ||
	mv_fail "daemon start hid memvirtd's logged reason: $(cat "$T/start-dir.err")"

# stats --watch: bad periods are refused by name, and nothing is stored before.
for p in 0 -1 abc 1e9 nan 0.01; do
	expect 2 "watch$p" stats --watch "$p" --socket "$T/none.sock"
	said "watch$p" "memvirt stats: --watch '$p' is not a number of seconds from 0.1 to 86400"
	expect 2 "watch=$p" stats "--watch=$p" --socket "$T/none.sock"
	said "watch=$p" "memvirt stats: --watch '$p' is not a number of seconds from 0.1 to 86400"
done
# Into a pipe: no escape codes, snapshots a blank line apart, and a bare --watch before another
# option keeps the default period of one second.
timeout 60 "$MEMVIRT" stats --watch --socket "$T/none.sock" 2>"$T/watch.err" | head -n 7 >"$T/watch.out"
[ "$(wc -l <"$T/watch.out")" -eq 7 ] || mv_fail "stats --watch printed: $(cat "$T/watch.out") $(cat "$T/watch.err")"
grep -q "$(printf '\033')" "$T/watch.out" && mv_fail "stats --watch wrote escape codes into a pipe"
sed -n 1p "$T/watch.out" | grep -q "^memvirt stats on $T/none.sock, every 1s, at " ||
	mv_fail "stats --watch --socket: $(sed -n 1p "$T/watch.out")"
[ "$(sed -n 3p "$T/watch.out")" = "no daemon answers on $T/none.sock; trying again" ] &&
	[ -z "$(sed -n 4p "$T/watch.out")" ] && sed -n 5p "$T/watch.out" | grep -q '^memvirt stats on ' ||
	mv_fail "stats --watch snapshots are not a blank line apart: $(cat "$T/watch.out")"

# A budget of one byte: one warning naming it, then each allocation refused with the reason, at
# the default log level. Four refusals or more are shown as the 1st and the 10th, ...
expect 3 budget1 run --simulate --socket "$T/run.sock" --budget 1 -- "$MVTRAIN" --model lstm --scale 0.125 --steps 1
[ "$(grep -c 'MEMVIRT_BUDGET=1 ' "$T/budget1.err")" -eq 1 ] ||
	mv_fail "--budget 1 warned $(grep -c 'MEMVIRT_BUDGET=1 ' "$T/budget1.err") times: $(cat "$T/budget1.err")"
grep -q "warn: MEMVIRT_BUDGET=1 is 1 B, less than the device's allocation granularity ([0-9.]* [KM]iB): every allocation would be refused$" \
	"$T/budget1.err" || mv_fail "no warning for --budget 1: $(cat "$T/budget1.err")"
grep -q "warn: cannot make room for [0-9]* bytes: CUDA_ERROR_OUT_OF_MEMORY under a budget of 1 B with 0 B resident (.*); nothing more could be paged out: the request alone is more than the budget$" \
	"$T/budget1.err" || mv_fail "no refusal line at the default level: $(cat "$T/budget1.err")"
exit 0
