# What a job does with its daemon's grants (memvirt(1)): a daemon of its own user (root here) that
# grants more than the job's own MEMVIRT_BUDGET (2^63 bytes) gets the job's own budget, not more;
# and when the daemon goes while the job runs, the job keeps the last grant it had instead of
# jumping to its whole local budget. The daemon is a fake one (mvsock fake) that grants a set size;
# the job holds between steps (mvtrain --hold-at) while the fake is killed. Both jobs end with the
# checksum of a plain run.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/daemon-lib.sh"

: "${MEMVIRT_LIB:=$MV_TOP_BUILDDIR/interpose/.libs/libmemvirt.so}"
[ -f "$MEMVIRT_LIB" ] || mv_fail "$MEMVIRT_LIB is not built"
SIMCUDA_DIR=$MV_TOP_BUILDDIR/tests/simcuda
STEPS=6
ARGS="--model resnet50 --batch 2 --scale 0.125 --steps $STEPS"
FAKE=$T/fake.sock

plain_run
dev=$((peak * 5 / 4))

# start_fake GRANT: a fake daemon on $FAKE granting GRANT bytes; its pid goes to DAEMON.
start_fake() {
	"$MVSOCK" "$FAKE" fake "$1" >"$T/fake.out" 2>&1 &
	DAEMON=$!
	n=0
	until grep -q '^listening$' "$T/fake.out" 2>/dev/null; do
		alive "$DAEMON" || mv_fail "the fake daemon ended: $(cat "$T/fake.out")"
		n=$((n + 1))
		[ "$n" -lt 600 ] || mv_fail "the fake daemon did not listen within 60 s"
		sleep 0.1
	done
}

# job NAME SETTINGS [MVTRAIN OPTION...]: a job on $FAKE (dl_job).
job() {
	dl_job "$FAKE" "$@"
}

# The budget in force at exit (the summary line) and the one the link took from the WELCOME.
exit_budget() {
	grep -E '^memvirt\[[0-9]+\] info: budget ' "$T/$1.err" | tail -n 1 | sed -n 's/.* info: budget \([^,]*\),.*/\1/p'
}
linked_budget() {
	sed -n 's/.*linked to memvirtd at .*: session [0-9]*, budget \(.*\)$/\1/p' "$T/$1.err" | head -n 1
}

# check_job NAME: the job ended well, with the plain run's checksum.
check_job() {
	wait_job "$last" 120
	mv_expect_ok "$1" "$STEPS"
	[ "$(mv_checksum "$1")" = "$sum" ] || mv_fail_run "$1" "checksum $(mv_checksum "$1"), the plain run's is $sum"
}

# The job's own budget, without a daemon.
job own "MEMVIRT_BUDGET=40% MEMVIRT_DAEMON=off"
check_job own
own=$(exit_budget own)
[ -n "$own" ] || mv_fail_run own "no budget in the exit summary"

# A grant of 2^63 bytes is the job's own budget.
start_fake 9223372036854775808
job big "MEMVIRT_BUDGET=40%"
check_job big
echo "fake grant 2^63 with MEMVIRT_BUDGET=40%: linked with budget '$(linked_budget big)', exit budget '$(exit_budget big)'"
[ "$(linked_budget big)" = "$own" ] ||
	mv_fail_run big "linked with budget '$(linked_budget big)', more than the job's own $own"
[ "$(exit_budget big)" = "$own" ] || mv_fail_run big "exit budget '$(exit_budget big)', expected $own"
grep -q '^hello ' "$T/fake.out" || mv_fail "the fake daemon saw no HELLO: $(cat "$T/fake.out")"
kill -KILL "$DAEMON"
wait "$DAEMON" 2>/dev/null
DAEMON=

# A daemon that goes: the job keeps its last grant (2/5 of its peak), not the device's memory.
grant=$((peak * 2 / 5))
start_fake "$grant"
job kept "" --hold-at 3 --hold-file "$T/go"
dl_wait_log kept "$last" "linked to memvirtd at $FAKE"
dl_wait_log kept "$last" "holding before step 3"
kill -KILL "$DAEMON"
wait "$DAEMON" 2>/dev/null
DAEMON=
dl_wait_log kept "$last" "lost memvirtd"
touch "$T/go"
check_job kept
granted=$(linked_budget kept)
echo "fake grant $grant B: linked with budget '$granted'; after the daemon went, exit budget '$(exit_budget kept)'"
grep "lost memvirtd" "$T/kept.err"
[ -n "$granted" ] && [ "$(exit_budget kept)" = "$granted" ] ||
	mv_fail_run kept "exit budget '$(exit_budget kept)', expected the last grant '$granted'"
exit 0
