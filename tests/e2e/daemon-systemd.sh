#!/bin/sh
# memvirtd under systemd: readiness through sd_notify only once the socket accepts, with and
# without a socket handed over, and log lines with journal priorities exactly when stderr is the
# journal's stream (JOURNAL_STREAM), today's timestamped lines otherwise.
set -eu
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/daemon-lib.sh"
MEMVIRTD=$MV_TOP_BUILDDIR/daemon/memvirtd
[ -x "$MEMVIRTD" ] || mv_fail "$MEMVIRTD is not built"
command -v python3 >/dev/null || mv_skip "python3 is not installed"

# notify_run NAME COMMAND...: runs COMMAND with NOTIFY_SOCKET naming a datagram socket of ours, as
# systemd does for Type=notify. At the first READY=1 it connects to $S at once: the connection must
# be accepted. Writes every message received to $T/NAME.msgs and "connect ok" or "connect failed:
# ERROR" to $T/NAME.result, then stops COMMAND (SIGTERM) and waits for it.
notify_run() {
	name=$1
	shift
	python3 - "$T/$name.notify" "$S" "$T/$name.msgs" "$T/$name.result" "$@" <<'PY' ||
import os, signal, socket, subprocess, sys
nsock, path, msgs_path, result_path, cmd = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:]
listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
listener.bind(nsock)
listener.settimeout(60)
proc = subprocess.Popen(cmd, env=dict(os.environ, NOTIFY_SOCKET=nsock), stdin=subprocess.DEVNULL)
msgs, result = [], "no READY=1 within 60 s"
try:
    while True:
        msg = listener.recv(4096).decode()
        msgs.append(msg)
        if "READY=1" in msg.split("\n"):
            c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                c.connect(path)
                result = "connect ok"
            except OSError as e:
                result = "connect failed: %s" % e
            c.close()
            break
except socket.timeout:
    pass
proc.send_signal(signal.SIGTERM)
try:
    proc.wait(60)
except subprocess.TimeoutExpired:
    proc.kill()
    result += "; still running 60 s after SIGTERM"
    proc.wait()
open(msgs_path, "w").write("".join(m + "\n" for m in msgs))
open(result_path, "w").write(result + "\n")
PY
		mv_fail "$name: the notify listener failed"
	[ "$(cat "$T/$name.result")" = "connect ok" ] ||
		mv_fail "$name: $(cat "$T/$name.result"); messages: $(cat "$T/$name.msgs"); log: $(cat "$T/$name.log")"
	grep -qx "STATUS=listening on $S" "$T/$name.msgs" ||
		mv_fail "$name: no STATUS=listening on $S among: $(cat "$T/$name.msgs")"
	rm -f "$T/$name.notify"
}

# memvirtd making its own socket: READY=1 comes after it listens, never before.
notify_run own "$MEMVIRTD" --socket "$S" --log-file "$T/own.log"
grep -q "listening on $S" "$T/own.log" || mv_fail "own: no listening line: $(cat "$T/own.log")"
echo "ok: READY=1 after memvirtd listens on its own socket"

# memvirtd taking the socket systemd made (LISTEN_PID, LISTEN_FDS, read through sd_listen_fds).
notify_run activated "$MVSOCK" "$S" serve "$MEMVIRTD" --log-file "$T/activated.log"
grep -q "listening on $S (socket from systemd)" "$T/activated.log" ||
	mv_fail "activated: the daemon did not take the socket it was handed: $(cat "$T/activated.log")"
echo "ok: READY=1 from memvirtd on a socket it was handed"

# As under DynamicUser= and ProtectSystem=strict: the socket's directory is not the daemon's to write,
# so it can make no lock file. It serves all the same, and says so at info level, not as a warning.
if [ "$(id -u)" -eq 0 ] && command -v setpriv >/dev/null; then
	chmod 755 "$T"
	mkdir -m 755 "$T/ro"
	# umask 0: the notify socket must take the unprivileged daemon's datagrams.
	(S=$T/ro/memvirtd.sock && umask 0 && notify_run unwritable "$MVSOCK" "$S" serve \
		setpriv --reuid=65534 --regid=65534 --clear-groups "$MEMVIRTD" --log-level debug 2>"$T/unwritable.log")
	grep -q "listening on $T/ro/memvirtd.sock (socket from systemd)" "$T/unwritable.log" ||
		mv_fail "unwritable: the daemon did not serve the socket it was handed: $(cat "$T/unwritable.log")"
	grep -q "info: no lock file $T/ro/memvirtd.sock.lock (Permission denied)" "$T/unwritable.log" ||
		mv_fail "unwritable: no info line about the lock file: $(cat "$T/unwritable.log")"
	grep -q ' warn: ' "$T/unwritable.log" &&
		mv_fail "unwritable: a warning: $(grep ' warn: ' "$T/unwritable.log")"
	[ ! -e "$T/ro/memvirtd.sock.lock" ] || mv_fail "unwritable: a lock file was made as $(id -u)"
	chmod 700 "$T"
	echo "ok: a handed socket in a directory memvirtd cannot write: served, no warning"
else
	echo "skip: the unwritable-directory case needs root and setpriv"
fi

# run_logged NAME JOURNAL_STREAM_VALUE: memvirtd at debug level, stderr to $T/NAME.err, until it
# answers, then stopped; JOURNAL_STREAM is set to the value ("" leaves it unset).
run_logged() {
	: >"$T/$1.err"
	if [ -n "$2" ]; then
		JOURNAL_STREAM=$2 "$MEMVIRTD" --socket "$S" --log-level debug 2>"$T/$1.err" &
	else
		env -u JOURNAL_STREAM "$MEMVIRTD" --socket "$S" --log-level debug 2>"$T/$1.err" &
	fi
	DAEMON=$!
	n=0
	until timeout 60 "$MEMVIRT" daemon status --socket "$S" >/dev/null 2>&1; do
		alive "$DAEMON" || mv_fail "$1: memvirtd exited: $(cat "$T/$1.err")"
		n=$((n + 1))
		[ "$n" -lt 600 ] || mv_fail "$1: memvirtd did not answer within 60 s"
		sleep 0.1
	done
	kill -TERM "$DAEMON"
	wait_job "$DAEMON" 60
	DAEMON=
	[ "$MV_RC" -eq 0 ] || mv_fail "$1: memvirtd exited $MV_RC after SIGTERM: $(cat "$T/$1.err")"
}

stamp='^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3} memvirtd\[[0-9]+\] (debug|info|warn|error): '

# stderr is the journal's stream: every line starts with its syslog priority and carries no time.
: >"$T/journal.err"
run_logged journal "$(stat -c '%d:%i' "$T/journal.err")"
[ -s "$T/journal.err" ] || mv_fail "journal: memvirtd logged nothing"
grep -Evq '^<[0-7]>' "$T/journal.err" &&
	mv_fail "journal: a line without a <N> priority: $(grep -Ev '^<[0-7]>' "$T/journal.err" | head -n 1)"
grep -Eq '[0-9]{2}:[0-9]{2}:[0-9]{2}|memvirtd\[' "$T/journal.err" &&
	mv_fail "journal: a line carries its own timestamp or pid: $(grep -E '[0-9]{2}:[0-9]{2}:[0-9]{2}|memvirtd\[' "$T/journal.err" | head -n 1)"
grep -Eq "^<6>memvirtd .* listening on $S " "$T/journal.err" ||
	mv_fail "journal: no '<6>' listening line (info is priority 6): $(cat "$T/journal.err")"
grep -Eq '^<7>connection [0-9]+: ' "$T/journal.err" ||
	mv_fail "journal: no '<7>' connection line (debug is priority 7): $(cat "$T/journal.err")"
grep -qx '<6>stopped' "$T/journal.err" || mv_fail "journal: no '<6>stopped' line: $(cat "$T/journal.err")"
echo "ok: journal priorities, no timestamps, when JOURNAL_STREAM names stderr"

# JOURNAL_STREAM naming some other file (stderr redirected away from the journal), or unset:
# today's lines.
: >"$T/other.err"
run_logged redirected "$(stat -c '%d:%i' "$T/other.err")"
run_logged plain ""
for name in redirected plain; do
	[ -s "$T/$name.err" ] || mv_fail "$name: memvirtd logged nothing"
	grep -Evq "$stamp" "$T/$name.err" &&
		mv_fail "$name: a line not in the timestamped format: $(grep -Ev "$stamp" "$T/$name.err" | head -n 1)"
	grep -Eq "$stamp"'memvirtd .* listening on ' "$T/$name.err" ||
		mv_fail "$name: no timestamped listening line: $(cat "$T/$name.err")"
done
echo "ok: timestamped lines when stderr is not the journal"
