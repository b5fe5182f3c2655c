# A memvirt run killed with SIGKILL cannot remove its private daemon's directory; the next run of
# the same user does (memvirt(1)): a directory memvirt-run.PID.XXXXXX of this user whose run is
# gone and on whose socket no daemon answers. It never touches one whose run still runs, one of
# another user, or a symbolic link in such a name's place (nor what the link points to).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/daemon-lib.sh"

# A socket named on which nothing answers: run starts a private daemon, not this user's own.
MEMVIRT_SOCKET=$T/none.sock
export MEMVIRT_SOCKET
mkdir -m 700 "$T/tmp" "$T/target"
touch "$T/target/keep"
# Decoys: a live run's (this shell's pid), another user's, and a link to a directory of files.
mkdir -m 700 "$T/tmp/memvirt-run.$$.live00"
mkdir -m 700 "$T/tmp/memvirt-run.999999.other0"
chown 65534 "$T/tmp/memvirt-run.999999.other0" 2>/dev/null || rmdir "$T/tmp/memvirt-run.999999.other0"
ln -s "$T/target" "$T/tmp/memvirt-run.999998.link00"
decoys=$(ls "$T/tmp")

# A run whose job waits for a file; once the job has started, the run is killed.
# No timeout(1) in between: the run itself is killed; its job ends by itself within 60 s.
TMPDIR=$T/tmp "$MEMVIRT" run -- sh -c '
	echo "$MEMVIRT_SOCKET" >"$0/socket"
	i=0
	while [ ! -e "$0/go" ] && [ "$i" -lt 1200 ]; do sleep 0.05; i=$((i + 1)); done' "$T" \
	>"$T/killed.out" 2>"$T/killed.err" &
run=$!
JOBS=$run
n=0
until [ -s "$T/socket" ]; do
	alive "$run" || mv_fail "the run ended before its job started: $(cat "$T/killed.err")"
	n=$((n + 1))
	[ "$n" -lt 600 ] || mv_fail "the run's job did not start within 60 s"
	sleep 0.1
done
sock=$(cat "$T/socket")
dir=$(dirname "$sock")
kill -KILL "$run"
wait "$run" 2>/dev/null
JOBS=
touch "$T/go"
# Its daemon ends with it (SIGTERM from the kernel); the directory stays.
n=0
while timeout 60 "$MEMVIRT" daemon status --socket "$sock" >/dev/null 2>&1; do
	n=$((n + 1))
	[ "$n" -lt 600 ] || mv_fail "the killed run's daemon still answers after 60 s"
	sleep 0.1
done
[ -d "$dir" ] || mv_fail "the killed run left no directory to reap"
echo "killed memvirt run left $(basename "$dir")"

# The next run removes it, and only it.
rc=0
TMPDIR=$T/tmp timeout 60 "$MEMVIRT" run -- true >"$T/next.out" 2>"$T/next.err" || rc=$?
[ "$rc" -eq 0 ] || mv_fail "the next run failed: $(cat "$T/next.err")"
cat "$T/next.err"
[ -e "$dir" ] && mv_fail "the next run left the killed run's directory $dir"
grep -qF "memvirt run: removed $(basename "$dir"), left by a run" "$T/next.err" ||
	mv_fail "the next run did not say what it removed: $(cat "$T/next.err")"
[ "$(ls "$T/tmp")" = "$decoys" ] || mv_fail "the next run left '$(ls "$T/tmp")', expected only '$decoys'"
[ -e "$T/target/keep" ] || mv_fail "the next run removed a file through a symbolic link"
exit 0
