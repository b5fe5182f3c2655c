# Second users for the end-to-end tests that run commands as another user: made with useradd
# (system users without a home), run with setpriv (or runuser) with no supplementary groups.
# Sourced after lib.sh; each test skips (exit 77) where the machine does not allow it.

MV_USERS_MADE=

# mv_users_need [setpriv] [userdel]: skips unless this is root with useradd and a way to run as
# another user (setpriv, else runuser; only setpriv with `setpriv`), and userdel with `userdel`.
mv_users_need() {
	[ "$(id -u)" -eq 0 ] || mv_skip "creating a second user needs root"
	command -v useradd >/dev/null 2>&1 || mv_skip "no useradd"
	MV_RUNAS=
	if command -v setpriv >/dev/null 2>&1; then
		MV_RUNAS=setpriv
	elif command -v runuser >/dev/null 2>&1; then
		MV_RUNAS=runuser
	fi
	for mv_need in "$@"; do
		case $mv_need in
		setpriv) [ "$MV_RUNAS" = setpriv ] || mv_skip "no setpriv to run a command as another user" ;;
		userdel) command -v userdel >/dev/null 2>&1 || mv_skip "no userdel" ;;
		esac
	done
	[ -n "$MV_RUNAS" ] || mv_skip "neither setpriv nor runuser to run a command as another user"
}

# mv_user_keep NAME: the system user NAME, made when missing and kept between runs.
mv_user_keep() {
	id -u "$1" >/dev/null 2>&1 && return 0
	useradd -r -M -s /bin/sh -d /nonexistent "$1" 2>"$MV_TMP/useradd.err" || id -u "$1" >/dev/null 2>&1 ||
		mv_skip "useradd $1 failed: $(cat "$MV_TMP/useradd.err")"
}

# mv_user_new PREFIX: a new system user named PREFIX and random hex, removed by mv_users_remove; its
# name goes to mv_user.
mv_user_new() {
	mv_user=$1$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')
	useradd -M -r -s /bin/sh -d /nonexistent "$mv_user" 2>"$MV_TMP/useradd.err" ||
		mv_skip "useradd failed: $(cat "$MV_TMP/useradd.err")"
	MV_USERS_MADE="$MV_USERS_MADE $mv_user"
}

# mv_users_remove: removes the users mv_user_new made (for a test's cleanup at exit).
mv_users_remove() {
	for mv_u in $MV_USERS_MADE; do
		userdel "$mv_u" 2>/dev/null
	done
	MV_USERS_MADE=
}

# mv_as USER CMD...: runs CMD as USER (a name or a uid).
mv_as() {
	mv_as_uid=$(id -u "$1") || mv_fail "no user $1"
	mv_as_gid=$(id -g "$1")
	shift
	if [ "$MV_RUNAS" = setpriv ]; then
		setpriv --reuid="$mv_as_uid" --regid="$mv_as_gid" --clear-groups -- "$@"
	else
		runuser -u "$(id -nu "$mv_as_uid")" -- "$@"
	fi
}

# mv_user_check USER: skips unless USER can run the build tree's programs, fails unless mv_as runs
# as USER.
mv_user_check() {
	mv_as "$1" "$MV_TOP_BUILDDIR/cli/memvirt" --version >/dev/null 2>&1 &&
		echo "{}" | mv_as "$1" "$MV_TOP_BUILDDIR/tests/e2e/mvsock" flat >/dev/null 2>&1 ||
		mv_skip "user $1 cannot run the build tree's programs ($MV_TOP_BUILDDIR)"
	[ "$(mv_as "$1" id -u)" = "$(id -u "$1")" ] || mv_fail "mv_as does not run as user $1"
}
