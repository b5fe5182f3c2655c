# The framework profiles of 'memvirt run' (memvirt(1)): with nothing set, each framework gets its
# stream-ordered allocator; a framework whose allocator the user chose through any of its
# variables, even empty or "0", gets nothing added, and what the user set reaches the job as set;
# a user's setting that leaves PyTorch's caching allocator in force gets one note.
. "$(dirname "$0")/lib.sh"
MEMVIRT=$MV_TOP_BUILDDIR/cli/memvirt
[ -x "$MEMVIRT" ] || mv_fail "$MEMVIRT is not built"
unset LD_PRELOAD MEMVIRT_BUDGET MEMVIRT_LOG MEMVIRT_LOG_FILE MEMVIRT_JOB MEMVIRT_DAEMON
# Every variable a profile reads, so that the caller's environment cannot decide a case.
vars="PYTORCH_ALLOC_CONF PYTORCH_CUDA_ALLOC_CONF PYTORCH_HIP_ALLOC_CONF PYTORCH_NO_CUDA_MEMORY_CACHING
PYTORCH_NO_HIP_MEMORY_CACHING XLA_PYTHON_CLIENT_ALLOCATOR XLA_PYTHON_CLIENT_PREALLOCATE XLA_CLIENT_MEM_FRACTION
XLA_PYTHON_CLIENT_MEM_FRACTION XLA_PYTHON_CLIENT_USE_TFRT_GPU_CLIENT TF_GPU_ALLOCATOR"
# shellcheck disable=SC2086
unset $vars
mv_tmpdir
T=$MV_TMP
mkdir -m 700 "$T/tmp"
# A private daemon in $T for each job: never the system's or the user's own.
MEMVIRT_SYSTEM_SOCKET=$T/system.sock
export MEMVIRT_SYSTEM_SOCKET

# job NAME [VAR=VALUE...]: the job's environment (its profile variables, one per line) in
# $T/NAME.env and run's messages in $T/NAME.err.
job() {
	name=$1
	shift
	rc=0
	# shellcheck disable=SC2086
	env "$@" TMPDIR="$T/tmp" timeout 60 "$MEMVIRT" run --socket "$T/memvirtd.sock" -- sh -c 'for v in '"$(echo $vars)"'; do
		eval "[ -n \"\${$v+set}\" ] && echo \"$v=\${$v}\""; done' >"$T/$name.env" 2>"$T/$name.err" || rc=$?
	[ "$rc" -eq 0 ] || mv_fail "memvirt run ($name): exit $rc: $(cat "$T/$name.err")"
}
# expect NAME LINES: the job's profile variables are exactly LINES.
expect() {
	printf '%s\n' "$2" | sed '/^$/d' | sort >"$T/$1.want"
	sort "$T/$1.env" >"$T/$1.got"
	cmp -s "$T/$1.want" "$T/$1.got" ||
		mv_fail "$1: the job's variables are [$(tr '\n' ' ' <"$T/$1.got")], not [$(tr '\n' ' ' <"$T/$1.want")]"
}

job none
expect none "PYTORCH_CUDA_ALLOC_CONF=backend:cudaMallocAsync
XLA_PYTHON_CLIENT_ALLOCATOR=cuda_async
XLA_PYTHON_CLIENT_PREALLOCATE=false
TF_GPU_ALLOCATOR=cuda_malloc_async"
grep -q "note:" "$T/none.err" && mv_fail "a run with no framework setting prints a note: $(cat "$T/none.err")"

# A user's PyTorch setting, under any of its names: nothing of PyTorch's is added.
job expandable PYTORCH_ALLOC_CONF=expandable_segments:True
expect expandable "PYTORCH_ALLOC_CONF=expandable_segments:True
XLA_PYTHON_CLIENT_ALLOCATOR=cuda_async
XLA_PYTHON_CLIENT_PREALLOCATE=false
TF_GPU_ALLOCATOR=cuda_malloc_async"
grep -q "memvirt run: note: PyTorch's expandable segments" "$T/expandable.err" ||
	mv_fail "no note on expandable segments: $(cat "$T/expandable.err")"
job cachingzero PYTORCH_NO_CUDA_MEMORY_CACHING=0
grep -qx "PYTORCH_NO_CUDA_MEMORY_CACHING=0" "$T/cachingzero.env" && ! grep -q "^PYTORCH_CUDA_ALLOC_CONF" "$T/cachingzero.env" ||
	mv_fail "PYTORCH_NO_CUDA_MEMORY_CACHING=0 did not keep PyTorch as set: $(cat "$T/cachingzero.env")"
grep -q "memvirt run: note: PyTorch keeps its caching allocator" "$T/cachingzero.err" ||
	mv_fail "no note on the caching allocator: $(cat "$T/cachingzero.err")"
job empty PYTORCH_CUDA_ALLOC_CONF=
grep -qx "PYTORCH_CUDA_ALLOC_CONF=" "$T/empty.env" || mv_fail "an empty PYTORCH_CUDA_ALLOC_CONF was changed: $(cat "$T/empty.env")"
# The user's own choice of the uncached or stream-ordered allocator needs no note.
job uncached PYTORCH_NO_CUDA_MEMORY_CACHING=1
grep -q "note:" "$T/uncached.err" && mv_fail "PYTORCH_NO_CUDA_MEMORY_CACHING=1 gets a note: $(cat "$T/uncached.err")"
job async PYTORCH_CUDA_ALLOC_CONF=backend:cudaMallocAsync,pinned_use_cuda_host_register:True
grep -q "note:" "$T/async.err" && mv_fail "the user's cudaMallocAsync gets a note: $(cat "$T/async.err")"

# JAX: any of its variables keeps all of them as set; the TFRT client gets the platform allocator.
job fraction XLA_PYTHON_CLIENT_MEM_FRACTION=.5
expect fraction "PYTORCH_CUDA_ALLOC_CONF=backend:cudaMallocAsync
XLA_PYTHON_CLIENT_MEM_FRACTION=.5
TF_GPU_ALLOCATOR=cuda_malloc_async"
job tfrt XLA_PYTHON_CLIENT_USE_TFRT_GPU_CLIENT=1
grep -qx "XLA_PYTHON_CLIENT_ALLOCATOR=platform" "$T/tfrt.env" || mv_fail "the TFRT client does not get the platform allocator: $(cat "$T/tfrt.env")"
job tfrtoff XLA_PYTHON_CLIENT_USE_TFRT_GPU_CLIENT=0
grep -qx "XLA_PYTHON_CLIENT_ALLOCATOR=cuda_async" "$T/tfrtoff.env" || mv_fail "XLA_PYTHON_CLIENT_USE_TFRT_GPU_CLIENT=0 changed the allocator: $(cat "$T/tfrtoff.env")"

# TensorFlow: the user's allocator is kept.
job tf TF_GPU_ALLOCATOR=cuda_malloc
grep -qx "TF_GPU_ALLOCATOR=cuda_malloc" "$T/tf.env" || mv_fail "TF_GPU_ALLOCATOR=cuda_malloc was changed: $(cat "$T/tf.env")"
echo "framework profiles: 10 environments as memvirt(1) says"
