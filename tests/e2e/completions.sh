# The shell completions name exactly the commands, actions and options of the option tables in
# cli/ (read from the source, so that an option added there and not here fails), bash's completes
# a few words as it should, and the example configuration passes 'memvirt config check'.
. "$(dirname "$0")/lib.sh"
MEMVIRT=$MV_TOP_BUILDDIR/cli/memvirt
[ -x "$MEMVIRT" ] || mv_fail "$MEMVIRT is not built"
S=$MV_TOP_SRCDIR
BASH_FILE=$S/completions/memvirt
ZSH_FILE=$S/completions/_memvirt
for f in "$BASH_FILE" "$ZSH_FILE" "$S/examples/memvirt.json"; do
	[ -r "$f" ] || mv_fail "$f is missing"
done

# The long options of a getopt_long table in the files, as "--name" words sorted; a file whose
# table takes CLI_PLAN_OPTIONS gets those too.
table() {
	for f in "$@"; do
		sed -n 's/.*{"\([a-z0-9-]*\)", *[a-z]*_argument,.*/--\1/p' "$f"
		grep -q 'CLI_PLAN_OPTIONS,' "$f" &&
			sed -n '/^#define CLI_PLAN_OPTIONS/,/^$/s/.*{"\([a-z0-9-]*\)", *[a-z]*_argument,.*/--\1/p' \
				"$S/cli/internal.h"
	done | sort -u | tr '\n' ' '
}

# The strings of a NULL-terminated array named NAME in FILE, sorted.
strings() {
	sed -n "s/.*[^a-z_]$2\[\] = {\(.*\), NULL};/\1/p" "$1" | tr ',' '\n' | tr -d '" ' |
		sed '/^$/d' | sort -u | tr '\n' ' '
}

# A bash variable of the completion file, sorted.
bash_var() {
	bash -c ". '$BASH_FILE'; echo \$$1" | tr ' ' '\n' | sed '/^$/d' | sort -u | tr '\n' ' '
}

# The options of zsh's function FUNC, sorted.
zsh_opts() {
	sed -n "/^$1() {/,/^}/p" "$ZSH_FILE" | grep -oE "'--[a-z0-9-]+(\[|=)" | tr -d "'[=" | sort -u | tr '\n' ' '
}

same() {
	[ "$2" = "$3" ] || mv_fail "$1: the completion has '$3', the code '$2'"
}

n=0
check() { # NAME CODE BASH-VARIABLE ZSH-FUNCTION
	same "bash $1" "$2" "$(bash_var "$3")"
	[ -z "$4" ] || same "zsh $1" "$2" "$(zsh_opts "$4")"
	n=$((n + 1))
}
check "run options" "$(table "$S/cli/cmd-run.c")" _memvirt_run_opts _memvirt_run
check "stats options" "$(table "$S/cli/cmd-stats.c")" _memvirt_stats_opts _memvirt_stats
check "ps options" "$(table "$S/cli/cmd-ps.c")" _memvirt_ps_opts _memvirt_ps
check "daemon options" "$(table "$S/cli/cmd-daemon.c")" _memvirt_daemon_opts _memvirt_daemon
check "config reload options" "$(table "$S/cli/client.c")" _memvirt_config_reload_opts ""
check "trace options" "$(table "$S/cli/cmd-trace.c")" _memvirt_trace_opts _memvirt_trace
check "config check options" "$(strings "$S/cli/cmd-config.c" config_check_options)" _memvirt_config_check_opts ""
check "policies options" "$(strings "$S/cli/cmd-policies.c" options)" _memvirt_policies_opts _memvirt_policies
check "top options" "$(strings "$S/cli/memvirt.c" memvirt_options)" _memvirt_top_opts ""
check "daemon actions" "$(strings "$S/cli/cmd-daemon.c" actions)" _memvirt_daemon_actions ""
check "config actions" "$(strings "$S/cli/cmd-config.c" config_actions)" _memvirt_config_actions ""
check "trace subcommands" "$(strings "$S/cli/cmd-trace.c" subs)" _memvirt_trace_subs ""
code=$( (sed -n 's/^\t{"\([a-z]*\)", cmd_[a-z]*,.*/\1/p' "$S/cli/memvirt.c"; echo help) | sort -u | tr '\n' ' ')
check "commands" "$code" _memvirt_commands ""
# zsh's config reload and check are inside _memvirt_config.
same "zsh config options" "$(table "$S/cli/client.c")" "$(zsh_opts _memvirt_config)"
# No table came out empty, which would make the comparisons hollow.
[ "$(table "$S/cli/cmd-run.c" | wc -w)" -ge 10 ] || mv_fail "read no options from cli/cmd-run.c"
[ "$(strings "$S/cli/cmd-daemon.c" actions | wc -w)" -eq 3 ] || mv_fail "read no daemon actions"
echo "$n lists of the completions match the code"

# bash completes as it should: COMP_WORDS up to the cursor, COMPREPLY out.
complete_bash() {
	bash -c ". '$BASH_FILE'; COMP_WORDS=($1); COMP_CWORD=\$((\${#COMP_WORDS[@]} - 1)); _memvirt; echo \"\${COMPREPLY[*]}\""
}
expect_completion() {
	got=$(complete_bash "$1")
	[ "$got" = "$2" ] || mv_fail "bash completes '$1' as '$got', expected '$2'"
}
expect_completion "memvirt st" "stats"
expect_completion "memvirt run --bud" "--budget --budget-per-process"
expect_completion "memvirt run --budget-p" "--budget-per-process"
expect_completion "memvirt run --record-m" "--record-max"
expect_completion "memvirt daemon sta" "start status"
expect_completion "memvirt trace re" "replay"
expect_completion "memvirt run --policy mm" "mmcnn"
expect_completion "memvirt daemon start --log-level w" "warn"
expect_completion "memvirt stats --pro" "--prometheus"
expect_completion "memvirt ps --j" "--json"
command -v zsh >/dev/null 2>&1 || mv_fail "zsh is not installed (scripts/setup installs it)"
zsh -n "$ZSH_FILE" || mv_fail "$ZSH_FILE does not parse"

# The example configuration is valid.
timeout 60 "$MEMVIRT" config check "$S/examples/memvirt.json" >/dev/null ||
	mv_fail "memvirt config check refused examples/memvirt.json"
exit 0
