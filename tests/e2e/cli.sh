# The memvirt command line: --version, every command's --help, an unknown command, the exit status
# of 'memvirt run' (the command's own, 128 plus a signal, 127 for a missing command, 2 for a bad
# --budget), signals passed on to the job, a private daemon that goes away with its job, and
# 'memvirt policies'.
. "$(dirname "$0")/lib.sh"
MEMVIRT=$MV_TOP_BUILDDIR/cli/memvirt
MEMVIRTD=$MV_TOP_BUILDDIR/daemon/memvirtd
for p in "$MEMVIRT" "$MEMVIRTD"; do
	[ -x "$p" ] || mv_fail "$p is not built"
done
if [ -n "${MEMVIRT_LIB:-}" ]; then
	MEMVIRT_LIBRARY=$MEMVIRT_LIB
	export MEMVIRT_LIBRARY
fi
unset LD_PRELOAD MEMVIRT_BUDGET MEMVIRT_LOG MEMVIRT_LOG_FILE MEMVIRT_JOB MEMVIRT_DAEMON

mv_tmpdir
chmod 700 "$MV_TMP"
T=$MV_TMP
S=$T/memvirtd.sock
DAEMON=
JOBS=


cleanup() {
	mv_stop_pids $JOBS $DAEMON
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

# expect WANT NAME ARGS...: runs memvirt ARGS (at most 60 s), stdout to $T/NAME.out and stderr to
# $T/NAME.err, and fails unless it exits WANT.
expect() {
	x_want=$1 x_name=$2
	shift 2
	rc=0
	timeout 60 "$MEMVIRT" "$@" >"$T/$x_name.out" 2>"$T/$x_name.err" || rc=$?
	echo "memvirt $* -> exit $rc"
	if [ "$rc" -ne "$x_want" ]; then
		echo "--- stdout" >&2
		cat "$T/$x_name.out" >&2
		echo "--- stderr" >&2
		cat "$T/$x_name.err" >&2
		mv_fail "memvirt $*: exit status $rc, expected $x_want"
	fi
}

# A private daemon for every run below; none of them may find another.
out=$(timeout 60 "$MEMVIRT" daemon start --socket "$S" --log-file "$T/memvirtd.log") ||
	mv_fail "memvirt daemon start --socket $S failed"
DAEMON=$(echo "$out" | sed -n 's/^memvirtd started (pid \([0-9]*\)).*/\1/p')
[ -n "$DAEMON" ] || mv_fail "memvirt daemon start printed no pid: $out"
MEMVIRT_SOCKET=$S
export MEMVIRT_SOCKET

# --version
expect 0 version --version
grep -Eq '^memvirt [0-9]+\.[0-9]+\.[0-9]+' "$T/version.out" || mv_fail "memvirt --version: $(cat "$T/version.out")"
timeout 60 "$MEMVIRTD" --version >"$T/dversion.out" || mv_fail "memvirtd --version failed"
grep -Eq '^memvirtd [0-9]+\.[0-9]+\.[0-9]+ \(protocol [0-9]+\)$' "$T/dversion.out" ||
	mv_fail "memvirtd --version: $(cat "$T/dversion.out")"

# --help: the overview names every command; each command's own help is its usage, on stdout.
expect 0 help --help
for cmd in run stats daemon config policies trace help; do
	grep -Eq "^  $cmd " "$T/help.out" || mv_fail "memvirt --help does not list '$cmd'"
done
for cmd in run stats daemon config policies trace; do
	expect 0 "help-$cmd" "$cmd" --help
	head -n 1 "$T/help-$cmd.out" | grep -q "^usage: memvirt $cmd" ||
		mv_fail "memvirt $cmd --help does not start with its usage: $(head -n 1 "$T/help-$cmd.out")"
	expect 0 "helpcmd-$cmd" help "$cmd"
	cmp -s "$T/help-$cmd.out" "$T/helpcmd-$cmd.out" ||
		mv_fail "memvirt help $cmd is not memvirt $cmd --help"
done
for args in "daemon start" "daemon stop" "daemon status" "config check" "config reload"; do
	name=$(echo "$args" | tr ' ' -)
	# shellcheck disable=SC2086 # args is two words
	expect 0 "help-$name" $args --help
	head -n 1 "$T/help-$name.out" | grep -q "^usage: memvirt " && grep -q "memvirt $args" "$T/help-$name.out" ||
		mv_fail "memvirt $args --help prints no usage of '$args'"
done
timeout 60 "$MEMVIRTD" --help >"$T/dhelp.out" || mv_fail "memvirtd --help failed"
grep -q '^usage: memvirtd' "$T/dhelp.out" || mv_fail "memvirtd --help prints no usage"

# An unknown command is refused, by name; a typo gets the closest command.
expect 2 unknown frobnicate
grep -q "'frobnicate'" "$T/unknown.err" || mv_fail "the refusal does not name 'frobnicate': $(cat "$T/unknown.err")"
expect 2 typo stast
grep -q "'stast'.*did you mean 'stats'" "$T/typo.err" || mv_fail "no suggestion for 'stast': $(cat "$T/typo.err")"
expect 2 noargs

# memvirt run exits as its command does.
expect 1 false run -- false
expect 3 exit3 run -- sh -c 'exit 3'
expect 0 true run -- true
expect 143 sigterm run -- sh -c 'kill -TERM $$'
expect 137 sigkill run -- sh -c 'kill -KILL $$'
expect 127 missing run -- memvirt-e2e-no-such-command
grep -q 'memvirt-e2e-no-such-command' "$T/missing.err" || mv_fail "the missing command is not named"
expect 127 missing-path run -- "$T/no-such-file"
# The job sees the daemon's socket and the preloaded library.
expect 0 env run -- sh -c 'echo "$MEMVIRT_SOCKET"; echo "$LD_PRELOAD"'
[ "$(head -n 1 "$T/env.out")" = "$S" ] || mv_fail "the job's MEMVIRT_SOCKET is $(head -n 1 "$T/env.out"), not $S"
sed -n 2p "$T/env.out" | grep -q 'libmemvirt\.so' || mv_fail "the job's LD_PRELOAD has no libmemvirt.so"

# A bad --budget is refused before anything runs, naming the value.
for b in 12parsecs 150% -1GiB 0:6GiB,0:1GiB 1:2GiB,x:1GiB; do
	expect 2 "budget$b" run --budget "$b" -- sh -c "touch '$T/ran'"
	grep -q -- "'$b'" "$T/budget$b.err" || mv_fail "the refusal of --budget $b does not name it: $(cat "$T/budget$b.err")"
	[ -e "$T/ran" ] && mv_fail "the job ran with --budget $b"
done
# Per device: the malformed entry is named with why.
grep -q "entry 'x:1GiB' has a device that is not an ordinal" "$T/budget1:2GiB,x:1GiB.err" ||
	mv_fail "the refusal of --budget 1:2GiB,x:1GiB does not name its entry: $(cat "$T/budget1:2GiB,x:1GiB.err")"
expect 2 budgetdevice run --device 1 --budget 1:6GiB -- true
grep -q "with --device the job sees its one device as device 0" "$T/budgetdevice.err" ||
	mv_fail "--device 1 --budget 1:6GiB was not refused for the device numbering: $(cat "$T/budgetdevice.err")"
expect 0 budgetlist run --budget 0:6GiB,40% -- sh -c 'echo "$MEMVIRT_BUDGET"'
[ "$(cat "$T/budgetlist.out")" = "0:6GiB,40%" ] || mv_fail "--budget 0:6GiB,40% gave the job MEMVIRT_BUDGET=$(cat "$T/budgetlist.out")"
expect 2 badpolicy run --policy nosuch -- true
grep -q "'nosuch'" "$T/badpolicy.err" || mv_fail "the refusal does not name the policy"
grep -q "known policies: lru vdnn-all vdnn-conv mmcnn auto" "$T/badpolicy.err" ||
	mv_fail "the refusal does not list the policies: $(cat "$T/badpolicy.err")"
expect 2 badlookahead run --lookahead 0 -- true
grep -q "'0'" "$T/badlookahead.err" || mv_fail "the refusal of --lookahead 0 does not name it"
expect 2 badpagemin run --page-min 4parsecs -- true
grep -q "'4parsecs'" "$T/badpagemin.err" || mv_fail "the refusal of --page-min does not name it"

# --record: an absolute path for the job, whatever its directory; a directory that is not
# there, or not writable, is refused before the job runs.
rc=0
(cd "$T" && timeout 60 "$MEMVIRT" run --record rel.trace -- sh -c 'echo "$MEMVIRT_RECORD"') \
	>"$T/record.out" 2>"$T/record.err" || rc=$?
[ "$rc" -eq 0 ] || mv_fail "memvirt run --record rel.trace: exit $rc: $(cat "$T/record.err")"
[ "$(cat "$T/record.out")" = "$(cd "$T" && pwd -P)/rel.trace" ] ||
	mv_fail "the job's MEMVIRT_RECORD is $(cat "$T/record.out"), not $T/rel.trace"
expect 2 recordnodir run --record "$T/nodir/x.trace" -- sh -c "touch '$T/ran'"
grep -q "no directory $T/nodir" "$T/recordnodir.err" || mv_fail "--record in a missing directory: $(cat "$T/recordnodir.err")"
[ -e "$T/ran" ] && mv_fail "the job ran with --record in a missing directory"
expect 2 recorddir run --record "$T" -- true
grep -q "is a directory" "$T/recorddir.err" || mv_fail "--record of a directory: $(cat "$T/recorddir.err")"
if [ "$(id -u)" -ne 0 ]; then
	mkdir "$T/ro" && chmod 500 "$T/ro"
	expect 2 recordro run --record "$T/ro/x.trace" -- true
	grep -q "cannot write in $T/ro" "$T/recordro.err" || mv_fail "--record in a read-only directory: $(cat "$T/recordro.err")"
fi

# The planning options, and a configuration's knobs for the job (here "sh"), reach the job's
# environment; an option wins over the file.
expect 0 knobs run --policy vdnn-all --lookahead 3 --page-min 4MiB -- \
	sh -c 'echo "$MEMVIRT_POLICY $MEMVIRT_LOOKAHEAD $MEMVIRT_PAGE_MIN"'
[ "$(cat "$T/knobs.out")" = "vdnn-all 3 4MiB" ] || mv_fail "the job's knobs: $(cat "$T/knobs.out")"
printf '{ "jobs": { "sh": { "policy": "mmcnn", "headroom": 0.25, "lookahead": 2, "iteration_marker": "sgd" } } }\n' \
	>"$T/knobs.json"
expect 0 cfgknobs run --config "$T/knobs.json" -- \
	sh -c 'echo "$MEMVIRT_POLICY $MEMVIRT_HEADROOM $MEMVIRT_LOOKAHEAD $MEMVIRT_ITERATION_MARKER ${MEMVIRT_PAGE_MIN:-unset}"'
[ "$(cat "$T/cfgknobs.out")" = "mmcnn 0.25 2 sgd unset" ] || mv_fail "the configuration's knobs: $(cat "$T/cfgknobs.out")"
expect 0 cfgoverride run --config "$T/knobs.json" --policy lru -- sh -c 'echo "$MEMVIRT_POLICY"'
[ "$(cat "$T/cfgoverride.out")" = lru ] || mv_fail "--policy did not win over the configuration: $(cat "$T/cfgoverride.out")"

# SIGTERM sent to memvirt run reaches the job, which handles it and ends as it chooses.
"$MEMVIRT" run -- sh -c "trap 'echo caught >\"$T/term\"; exit 7' TERM; : >\"$T/ready\"; while :; do sleep 0.1; done" \
	>"$T/fwd.out" 2>"$T/fwd.err" &
run=$!
JOBS=$run
n=0
until [ -e "$T/ready" ]; do
	alive "$run" || mv_fail "memvirt run ended before the job was ready: $(cat "$T/fwd.err")"
	n=$((n + 1))
	[ "$n" -lt 600 ] || mv_fail "the job did not start within 60 s"
	sleep 0.1
done
kill -TERM "$run"
n=0
while alive "$run" && [ "$n" -lt 600 ]; do
	n=$((n + 1))
	sleep 0.1
done
alive "$run" && mv_fail "memvirt run still runs 60 s after SIGTERM"
rc=0
wait "$run" || rc=$?
JOBS=
echo "SIGTERM to memvirt run -> exit $rc"
[ "$(cat "$T/term" 2>/dev/null)" = caught ] || mv_fail "the job did not get the SIGTERM sent to memvirt run"
[ "$rc" -eq 7 ] || mv_fail "memvirt run exited $rc, the job 7"

# With no daemon on the socket, run starts a private one for the job and removes it after.
mkdir "$T/private"
rc=0
TMPDIR=$T/private timeout 60 "$MEMVIRT" run --socket "$T/none.sock" -- \
	sh -c 'echo "$MEMVIRT_SOCKET"; test -S "$MEMVIRT_SOCKET"' >"$T/private.out" 2>"$T/private.err" || rc=$?
echo "memvirt run --socket (none there) -- sh -> exit $rc"
[ "$rc" -eq 0 ] || mv_fail "the job did not find its private daemon's socket: $(cat "$T/private.err")"
grep -q "no daemon answers on $T/none.sock" "$T/private.err" || mv_fail "run did not say it starts a private daemon"
case $(cat "$T/private.out") in
"$T/private/memvirt-run."*/memvirtd.sock) ;;
*) mv_fail "the private daemon's socket is $(cat "$T/private.out"), not in TMPDIR" ;;
esac
[ -z "$(ls "$T/private")" ] || mv_fail "the private daemon's directory is left: $(ls "$T/private")"

# policies lists the five built-ins, in the registry's order, each with its summary.
expect 0 policies policies
[ "$(awk '{ print $1 }' "$T/policies.out" | tr '\n' ' ')" = "lru vdnn-all vdnn-conv mmcnn auto " ] ||
	mv_fail "memvirt policies does not list the five policies: $(cat "$T/policies.out")"
awk 'NF < 4 { exit 1 }' "$T/policies.out" || mv_fail "a policy has no summary: $(cat "$T/policies.out")"

timeout 60 "$MEMVIRT" daemon stop --socket "$S" >/dev/null || mv_fail "memvirt daemon stop failed"
DAEMON=
exit 0
