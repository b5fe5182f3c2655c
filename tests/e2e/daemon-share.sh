# Two jobs share one device budget: with a config whose device.budget (in bytes) is below the sum of
# their peaks, both page and end with the checksum of a plain run; in every 'memvirt stats --json'
# sampled while they run, the grants on a device add up to no more than its budget, and while both
# run each is granted less than the whole budget.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/daemon-lib.sh"

STEPS=30
ARGS="--model resnet50 --batch 2 --scale 0.125 --steps $STEPS"
JOB_A=e2e-share-a-$$
JOB_B=e2e-share-b-$$

plain_run
# Each job alone would fit its device; the two together get 6/5 of one peak, 3/5 each.
budget=$((peak * 6 / 5))
dev=$((peak * 4))
printf '{\n  "device": { "budget": "%s" }\n}\n' "$budget" >"$T/memvirt.json"
timeout 60 "$MEMVIRT" config check "$T/memvirt.json" >/dev/null || mv_fail "config check refused $T/memvirt.json"

start_daemon --config "$T/memvirt.json"
echo "$out; device budget $budget bytes, peak $peak"

# start_job NAME JOB: runs mvtrain $ARGS under the daemon in the background; its pid goes to JOBS.
# Each holds before its last step until a sample has shown both at once, so that the two share the
# device however slow the machine.
start_job() {
	# shellcheck disable=SC2086 # ARGS is a list of words
	SIMCUDA_MEM=$dev MEMVIRT_LOG=info MEMVIRT_JOB=$2 timeout 300 \
		"$MEMVIRT" run --simulate --socket "$S" -- "$MVTRAIN" $ARGS --hold-at $((STEPS - 1)) --hold-file "$T/go" \
		>"$T/$1.out" 2>"$T/$1.err" &
	JOBS="$JOBS $!"
	last=$!
}
start_job a "$JOB_A"
run_a=$last
start_job b "$JOB_B"
run_b=$last

# Every sample: per device, the sum of the sessions' grants and the daemon's own "granted" are
# within the budget; with both sessions there, each grant is below the budget.
samples=0
both=0
n=0
while alive "$run_a" || alive "$run_b"; do
	n=$((n + 1))
	[ -e "$T/go" ] || [ "$n" -lt 1200 ] || mv_fail "within 120 s no sample showed both jobs at once"
	if timeout 60 "$MEMVIRT" stats --json --socket "$S" >"$T/stats.json" 2>"$T/stats.err" &&
		"$MVSOCK" flat <"$T/stats.json" >"$T/stats.flat"; then
		samples=$((samples + 1))
		bad=$(awk -v budget="$budget" '
			{ split($1, k, ".") }
			k[1] == "sessions" && k[3] == "device" { dev[k[2]] = $2 }
			k[1] == "sessions" && k[3] == "grant" { grant[k[2]] = $2 }
			k[1] == "devices" && k[3] == "device" { ddev[k[2]] = $2 }
			k[1] == "devices" && k[3] == "granted" { dgranted[k[2]] = $2 }
			k[1] == "devices" && k[3] == "budget" { dbudget[k[2]] = $2 }
			END {
				for (i in grant) total[dev[i]] += grant[i]
				for (d in total)
					if (total[d] > budget)
						printf "device %s: grants add up to %d, budget %d\n", d, total[d], budget
				for (i in ddev) {
					if (dbudget[i] != budget)
						printf "device %s: budget %d, the config says %d\n", ddev[i], dbudget[i], budget
					if (dgranted[i] > dbudget[i])
						printf "device %s: granted %d of %d\n", ddev[i], dgranted[i], dbudget[i]
					if (dgranted[i] != total[ddev[i]] + 0)
						printf "device %s: granted %d, its sessions hold %d\n", ddev[i], dgranted[i], total[ddev[i]]
				}
			}' "$T/stats.flat")
		[ -z "$bad" ] || { cat "$T/stats.json" >&2; mv_fail "sample $samples: $bad"; }
		ga=$(sess_field "$T/stats.flat" "$JOB_A" grant)
		gb=$(sess_field "$T/stats.flat" "$JOB_B" grant)
		if [ -n "$ga" ] && [ -n "$gb" ]; then
			both=$((both + 1))
			[ "$ga" -lt "$budget" ] && [ "$gb" -lt "$budget" ] ||
				mv_fail "sample $samples: with both jobs running, grants $ga and $gb of a budget of $budget"
			[ "$both" -eq 1 ] && echo "sample $samples: both jobs run, granted $ga and $gb of $budget"
			touch "$T/go"
		fi
	fi
	sleep 0.1
done
wait_job "$run_a" 300
rc_a=$MV_RC
wait_job "$run_b" 300
rc_b=$MV_RC
echo "two jobs, mvtrain $ARGS -> exit $rc_a and $rc_b; $samples samples, $both with both"

for j in a b; do
	MV_RC=$(eval echo "\$rc_$j")
	mv_expect_ok "$j" "$STEPS"
	[ "$(mv_checksum "$j")" = "$sum" ] || mv_fail_run "$j" "checksum $(mv_checksum "$j"), the plain run's is $sum"
	grep -q "linked to memvirtd at $S" "$T/$j.err" || mv_fail_run "$j" "the job did not link to the daemon on $S"
	outs=$(grep -E '^memvirt\[[0-9]+\] info: budget ' "$T/$j.err" | tail -n 1 |
		sed -n 's/.*; page-outs \([0-9][0-9]*\).*/\1/p')
	[ -n "$outs" ] && [ "$outs" -gt 0 ] || mv_fail_run "$j" "page-outs '$outs', expected more than 0"
done
[ "$both" -gt 0 ] || mv_fail "no sample showed both jobs at once: they never shared the device"

timeout 60 "$MEMVIRT" daemon stop --socket "$S" || mv_fail "memvirt daemon stop failed"
DAEMON=
exit 0
