# Thirty-two jobs at once against one daemon: small LSTM runs, each holding before its third step
# until all of them are linked at the same time, which the daemon's stats must show (32 sessions on
# the device, each granted a 32nd of it, below what it asks, so that all of them page). Every job
# ends with the checksum of a plain run.
set -u
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/daemon-lib.sh"

N=32
STEPS=6
ARGS="--model lstm --batch 4 --scale 0.0625 --steps $STEPS"

plain_run
# A device of 16 peaks: each job asks 6% of it (about one peak), and 32 of them get half a peak each.
dev=$((peak * 16))

start_daemon
echo "$out"
runs=
i=0
while [ "$i" -lt "$N" ]; do
	# shellcheck disable=SC2086 # ARGS is a list of words
	env SIMCUDA_MEM=$dev MEMVIRT_LOG=info MEMVIRT_JOB=e2e-many-$i-$$ timeout 600 \
		"$MEMVIRT" run --simulate --socket "$S" --budget 6% -- "$MVTRAIN" $ARGS \
		--hold-at 3 --hold-file "$T/go" >"$T/j$i.out" 2>"$T/j$i.err" &
	runs="$runs $!"
	JOBS="$JOBS $!"
	i=$((i + 1))
done

# Until the stats show all of them at once: they hold until then, so a job that ends first failed.
n=0
most=0
while :; do
	if timeout 60 "$MEMVIRT" stats --json --socket "$S" >"$T/stats.json" 2>/dev/null; then
		"$MVSOCK" flat <"$T/stats.json" >"$T/stats.flat"
		k=$(grep -c "^sessions\.[0-9]*\.job e2e-many-[0-9]*-$$\$" "$T/stats.flat" || :)
		[ "$k" -gt "$most" ] && most=$k
		[ "$k" -eq "$N" ] && break
	fi
	j=0
	for p in $runs; do
		alive "$p" || mv_fail "job $j ended while only $most were linked at once: $(tail -n 5 "$T/j$j.err" | tr '\n' ' ')"
		j=$((j + 1))
	done
	n=$((n + 1))
	[ "$n" -lt 3000 ] || mv_fail "at most $most of $N jobs were linked at once within 300 s"
	sleep 0.1
done
grep -qx "devices.0.sessions $N" "$T/stats.flat" ||
	mv_fail "the device does not count $N sessions: $(grep '^devices' "$T/stats.flat")"
# Each session's grant is its 32nd of the device, below its own budget.
share=$((dev / N))
bad=$(awk -v s="$share" '$1 ~ /^sessions\.[0-9]+\.grant$/ && ($2 < s - 64 || $2 > s + 64)' "$T/stats.flat")
[ -z "$bad" ] || mv_fail "grants other than a 32nd of the device ($share): $bad"
echo "the daemon's stats show $N sessions on the device at once, each granted about $share bytes"
: >"$T/go"

# shellcheck disable=SC2086 # runs is a list of pids, in order
set -- $runs
i=0
while [ "$i" -lt "$N" ]; do
	wait_job "$1" 300
	shift
	mv_expect_ok "j$i" "$STEPS"
	[ "$(mv_checksum "j$i")" = "$sum" ] || mv_fail_run "j$i" "checksum $(mv_checksum "j$i"), the plain run's is $sum"
	grep -Eq 'page-outs [1-9][0-9]* ' "$T/j$i.err" || mv_fail_run "j$i" "job $i never paged"
	i=$((i + 1))
done
echo "all $N jobs ended with checksum $sum and paged"

alive "$DAEMON" || mv_fail "the daemon died"
timeout 60 "$MEMVIRT" daemon stop --socket "$S" >/dev/null || mv_fail "memvirt daemon stop failed"
DAEMON=
exit 0
