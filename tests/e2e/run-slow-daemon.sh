#!/bin/sh
# memvirt run finds a daemon that is alive but slow to answer (as on a loaded node; here it is
# stopped with SIGSTOP for two seconds): the job waits for it and links to it, and no private daemon
# is started beside it.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/daemon-lib.sh"
mv_need_mvtrain
JOB=e2e-slow-$$

start_daemon
kill -STOP "$DAEMON"
MEMVIRT_JOB=$JOB MEMVIRT_LOG=info timeout 120 "$MEMVIRT" run --simulate --socket "$S" -- \
	"$MVTRAIN" --model lstm --batch 4 --scale 0.0625 --steps 6 >"$T/job.out" 2>"$T/job.err" &
run=$!
JOBS=$run
# Longer than run once waited for a daemon's answer before starting a private one.
sleep 2
kill -CONT "$DAEMON"
wait_job "$run" 120
[ "$MV_RC" -eq 0 ] || mv_fail "memvirt run exited $MV_RC: $(cat "$T/job.err")"
grep -q "private" "$T/job.err" && mv_fail "memvirt run started a private daemon: $(cat "$T/job.err")"
grep -q "job '$JOB'" "$T/memvirtd.log" ||
	mv_fail "the job never linked to the daemon on $S: $(cat "$T/memvirtd.log")"
echo "ok: memvirt run waited for a daemon stopped for two seconds and the job linked to it"
