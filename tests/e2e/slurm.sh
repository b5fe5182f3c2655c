# The SPANK plugin under a real single-node Slurm (Debian's slurmctld, slurmd and munge, all in a
# private directory on free ports): srun -n2 --memvirt=budget=B,policy=P runs two mvtrain tasks
# on the simulated GPU, each preloading the build tree's libmemvirt.so and linked to the daemon that
# plugstack.conf names. Both end with the checksum of a plain run; while they hold, the daemon's
# stats show both, as job slurm-JOB.STEP with ranks 0 and 1 and the budget B. The task environment
# keeps what the user set, and a bad --memvirt value stops srun with the plugin's error naming it.
# Skips only when munge or Slurm is not installed or cannot start here.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/daemon-lib.sh"
PLUGIN=$MV_TOP_BUILDDIR/slurm/.libs/memvirt_spank.so
LIB=${MEMVIRT_LIB:-$MV_TOP_BUILDDIR/interpose/.libs/libmemvirt.so}
for p in munged slurmctld slurmd srun scontrol sinfo squeue scancel; do
	command -v "$p" >/dev/null || mv_skip "$p is not installed (scripts/setup installs Debian's Slurm and munge)"
done
[ -r "$PLUGIN" ] || mv_skip "the SPANK plugin is not built: configure found no slurm/spank.h (libslurm-dev)"
# A sanitizer build's plugin needs its runtime loaded first, which Slurm's own uninstrumented
# slurmstepd does not: the step would never launch. The plain build's run tests the plugin.
[ -z "${MV_SANITIZER:-}" ] || mv_skip "a $MV_SANITIZER build's plugin cannot load into Slurm's uninstrumented daemons; the plain build's run tests it"
command -v python3 >/dev/null || mv_fail "python3 is not installed"

STEPS=4
ARGS="--model resnet50 --batch 2 --scale 0.125 --steps $STEPS"
SL=$T/slurm
mkdir -p "$SL/state" "$SL/spool" "$SL/munge"
chmod 700 "$SL/munge"
MUNGED=
CTLD=
SLURMD=
SRUN=

# Every exit: the job cancelled (its held tasks let go), then Slurm and munge stopped, then the
# memvirt daemon and the directory (daemon-lib.sh's cleanup).
slurm_cleanup() {
	: >"$T/go" 2>/dev/null
	if [ -n "$CTLD" ] && alive "$CTLD"; then
		scancel --quiet --user=root >/dev/null 2>&1
		for _ in $(seq 100); do
			[ -z "$(squeue -h -o %i 2>/dev/null)" ] && break
			sleep 0.1
		done
	fi
	for p in $SRUN $SLURMD $CTLD $MUNGED; do
		kill -TERM "$p" 2>/dev/null
	done
	for _ in $(seq 100); do
		left=
		for p in $SRUN $SLURMD $CTLD $MUNGED; do
			alive "$p" && left="$left $p"
		done
		[ -z "$left" ] && break
		sleep 0.1
	done
	for p in $left; do
		kill -KILL "$p" 2>/dev/null
	done
	cleanup
}
trap slurm_cleanup EXIT

# Shows a log's last lines, for the reason a daemon gave.
tail_log() {
	echo "--- last lines of $1" >&2
	tail -n 20 "$1" >&2 2>/dev/null
}

# Two ports nothing listens on, from the kernel.
ports=$(python3 -c '
import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(" ".join(str(x.getsockname()[1]) for x in s))')

# munge with a fresh key, on a private socket.
dd if=/dev/urandom of="$SL/munge/munge.key" bs=1024 count=1 2>/dev/null
chmod 400 "$SL/munge/munge.key"
munged --foreground --force --key-file="$SL/munge/munge.key" --socket="$SL/munge/munge.sock" \
	--pid-file="$SL/munge/munged.pid" --seed-file="$SL/munge/munged.seed" \
	--log-file="$SL/munge/munged.log" >"$SL/munged.out" 2>&1 &
MUNGED=$!
for _ in $(seq 300); do
	[ -S "$SL/munge/munge.sock" ] && break
	alive "$MUNGED" || { tail_log "$SL/munged.out"; tail_log "$SL/munge/munged.log"; mv_skip "munged cannot start here"; }
	sleep 0.1
done
[ -S "$SL/munge/munge.sock" ] || mv_fail "munged made no socket within 30 s"

cat >"$SL/slurm.conf" <<EOF
ClusterName=memvirt-e2e
SlurmctldHost=localhost
SlurmctldPort=${ports% *}
SlurmdPort=${ports#* }
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$SL/munge/munge.sock
StateSaveLocation=$SL/state
SlurmdSpoolDir=$SL/spool
SlurmctldPidFile=$SL/slurmctld.pid
SlurmdPidFile=$SL/slurmd.pid
SlurmctldLogFile=$SL/slurmctld.log
SlurmdLogFile=$SL/slurmd.log
SlurmdDebug=debug
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SwitchType=switch/none
MpiDefault=none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
PlugStackConfig=$SL/plugstack.conf
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$(nproc) State=UNKNOWN
PartitionName=e2e Nodes=localhost Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
EOF
SLURM_CONF=$SL/slurm.conf
export SLURM_CONF

plain_run
dev=$((peak * 4))
# Each task's own budget: three quarters of its peak, in whole 4 KiB granules, so that it pages.
budget=$((peak * 3 / 4 / 4096 * 4096))
start_daemon
echo "required $PLUGIN library=$LIB socket=$S" >"$SL/plugstack.conf"

slurmctld -D -i -f "$SL/slurm.conf" >"$SL/slurmctld.out" 2>&1 &
CTLD=$!
slurmd -D -N localhost -f "$SL/slurm.conf" >"$SL/slurmd.out" 2>&1 &
SLURMD=$!

# Ready: the controller answers and the node is idle (generous bounds for a busy machine).
ready=
for _ in $(seq 1200); do
	for p in "$CTLD:slurmctld" "$SLURMD:slurmd"; do
		alive "${p%%:*}" && continue
		tail_log "$SL/${p#*:}.out"
		tail_log "$SL/${p#*:}.log"
		mv_skip "${p#*:} cannot start here"
	done
	if scontrol ping 2>/dev/null | grep -q 'is UP' &&
		[ "$(sinfo -h -n localhost -o %T 2>/dev/null)" = idle ]; then
		ready=1
		break
	fi
	sleep 0.1
done
[ -n "$ready" ] || { tail_log "$SL/slurmctld.log"; tail_log "$SL/slurmd.log"; mv_fail "the node is not idle within 120 s: $(sinfo 2>&1)"; }
echo "Slurm is up: $(sinfo -h -o '%P %D %T %N')"

# A bad value is refused in srun, naming it; no job runs.
bad() {
	rc=0
	timeout 60 srun -N1 -n1 "--memvirt=$1" true >"$T/bad.out" 2>"$T/bad.err" || rc=$?
	[ "$rc" -ne 0 ] || mv_fail "srun --memvirt=$1 succeeded"
	grep -qF "$2" "$T/bad.err" || { cat "$T/bad.err" >&2; mv_fail "srun --memvirt=$1 did not say: $2"; }
	echo "srun --memvirt=$1 -> exit $rc: $(grep -F "$2" "$T/bad.err")"
}
bad budget=bogus "memvirt: --memvirt: budget=bogus is not a size such as 6GiB or a percentage such as 40%"
bad policy=nope "memvirt: --memvirt: policy=nope is not one of lru, "
bad budget=0 "memvirt: --memvirt: budget=0 leaves the job no device memory"
bad size=1GiB "memvirt: --memvirt: 'size=1GiB' is not policy=P or budget=B"

# The task environment: the plugin's variables and the framework profiles (memvirt(1)); a variable
# the user set is kept, and the library is added after the user's own preload.
unset PYTORCH_ALLOC_CONF PYTORCH_CUDA_ALLOC_CONF PYTORCH_HIP_ALLOC_CONF PYTORCH_NO_CUDA_MEMORY_CACHING \
	PYTORCH_NO_HIP_MEMORY_CACHING XLA_PYTHON_CLIENT_ALLOCATOR XLA_PYTHON_CLIENT_PREALLOCATE XLA_CLIENT_MEM_FRACTION \
	XLA_PYTHON_CLIENT_MEM_FRACTION XLA_PYTHON_CLIENT_USE_TFRT_GPU_CLIENT TF_GPU_ALLOCATOR
MEMVIRT_POLICY=auto timeout 60 srun -N1 -n1 --export=ALL,LD_PRELOAD=/nonexistent/keep.so \
	--memvirt=policy=lru,budget=2GiB env >"$T/env.out" 2>"$T/env.err" ||
	{ cat "$T/env.err" >&2; mv_fail "srun --memvirt env failed"; }
step=$(sed -n 's/^SLURM_JOB_ID=//p' "$T/env.out").$(sed -n 's/^SLURM_STEP_ID=//p' "$T/env.out")
for want in "LD_PRELOAD=/nonexistent/keep.so:$LIB" "MEMVIRT_POLICY=auto" "MEMVIRT_BUDGET=2GiB" "MEMVIRT_SOCKET=$S" \
	"MEMVIRT_JOB=slurm-$step" "MEMVIRT_GROUP=slurm-$step" "PYTORCH_CUDA_ALLOC_CONF=backend:cudaMallocAsync" \
	"XLA_PYTHON_CLIENT_ALLOCATOR=cuda_async" "XLA_PYTHON_CLIENT_PREALLOCATE=false" "TF_GPU_ALLOCATOR=cuda_malloc_async"; do
	grep -qxF "$want" "$T/env.out" || { cat "$T/env.out" >&2; mv_fail "the task's environment has no $want"; }
done
echo "task environment: job slurm-$step, the user's MEMVIRT_POLICY and LD_PRELOAD kept"
timeout 60 srun -N1 -n1 --memvirt=policy=vdnn-all env >"$T/env.out" 2>"$T/env.err" ||
	{ cat "$T/env.err" >&2; mv_fail "srun --memvirt=policy=vdnn-all env failed"; }
grep -qxF "MEMVIRT_POLICY=vdnn-all" "$T/env.out" && ! grep -q "^MEMVIRT_BUDGET=" "$T/env.out" ||
	{ cat "$T/env.out" >&2; mv_fail "--memvirt=policy=vdnn-all gave the task another policy or a budget"; }
# The user's own PyTorch allocator: nothing of PyTorch's is added.
timeout 60 srun -N1 -n1 --export=ALL,PYTORCH_NO_CUDA_MEMORY_CACHING=1 --memvirt env >"$T/env.out" 2>"$T/env.err" ||
	{ cat "$T/env.err" >&2; mv_fail "srun --memvirt env with the user's PyTorch setting failed"; }
grep -qxF "PYTORCH_NO_CUDA_MEMORY_CACHING=1" "$T/env.out" && ! grep -q "^PYTORCH_CUDA_ALLOC_CONF=" "$T/env.out" &&
	grep -qxF "TF_GPU_ALLOCATOR=cuda_malloc_async" "$T/env.out" ||
	{ cat "$T/env.out" >&2; mv_fail "the user's PYTORCH_NO_CUDA_MEMORY_CACHING=1 did not keep PyTorch as set"; }

# Two tasks that page, held after their first step until the daemon's view is checked.
# shellcheck disable=SC2086 # ARGS is a list of words
SIMCUDA_MEM=$dev MEMVIRT_LOG=info timeout 300 srun -N1 -n2 -O "--memvirt=budget=$budget,policy=lru" \
	-o "$T/task%t.out" -e "$T/task%t.err" "$MVTRAIN" $ARGS --hold-at 2 --hold-file "$T/go" \
	>"$T/srun.out" 2>"$T/srun.err" &
SRUN=$!

# Both sessions, of job slurm-JOB.0, ranks 0 and 1, each asking for the budget it was given.
seen=
for _ in $(seq 600); do
	alive "$SRUN" || break
	job=$(squeue -h -o %i 2>/dev/null | head -n 1)
	if [ -n "$job" ] && timeout 60 "$MEMVIRT" stats --json --socket "$S" >"$T/stats.json" 2>/dev/null &&
		"$MVSOCK" flat <"$T/stats.json" >"$T/stats.flat"; then
		ranks=$(sess_field "$T/stats.flat" "slurm-$job.0" rank | sort | tr '\n' ' ')
		budgets=$(sess_field "$T/stats.flat" "slurm-$job.0" budget | sort -u | tr '\n' ' ')
		if [ "$ranks" = "0 1 " ]; then
			seen=1
			break
		fi
	fi
	sleep 0.1
done
[ -n "$seen" ] || { cat "$T/stats.json" "$T/srun.err" "$T"/task*.err >&2; mv_fail "stats never showed job slurm-$job.0 with ranks 0 and 1 (ranks: $ranks)"; }
[ "$budgets" = "$budget " ] || mv_fail "the sessions of slurm-$job.0 ask for budgets $budgets, --memvirt said $budget"
echo "stats while held: job slurm-$job.0, ranks $ranks, budget $budgets"

: >"$T/go"
wait_job "$SRUN" 300
SRUN=
[ "$MV_RC" -eq 0 ] || { cat "$T/srun.err" "$T"/task*.err >&2; mv_fail "srun exited $MV_RC"; }
for t in 0 1; do
	mv_expect_ok "task$t" "$STEPS"
	[ "$(mv_checksum "task$t")" = "$sum" ] || mv_fail_run "task$t" "checksum $(mv_checksum "task$t"), the plain run's is $sum"
	grep -q "linked to memvirtd at $S" "$T/task$t.err" || mv_fail_run "task$t" "task $t did not link to the daemon on $S"
	outs=$(grep -E '^memvirt\[[0-9]+\] info: budget ' "$T/task$t.err" | tail -n 1 |
		sed -n 's/.*; page-outs \([0-9][0-9]*\).*/\1/p')
	[ -n "$outs" ] && [ "$outs" -gt 0 ] || mv_fail_run "task$t" "page-outs '$outs', expected more than 0"
done
echo "srun -n2 --memvirt=budget=$budget,policy=lru: both tasks' checksums are the plain run's, $sum"
exit 0
