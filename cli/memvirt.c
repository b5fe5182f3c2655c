/* memvirt, the command-line front end: finds the subcommand and hands it the rest of argv. */
#include "config.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/internal.h"

/* One subcommand: its name, its entry point and the line `memvirt --help` shows for it. */
struct memvirt_cmd {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *summary;
};

static const struct memvirt_cmd memvirt_cmds[] = {
	{"run", cmd_run, "run a command with libmemvirt.so preloaded, under a daemon"},
	{"stats", cmd_stats, "show live paging statistics of every job"},
	{"ps", cmd_ps, "list the daemons found and the jobs on each"},
	{"daemon", cmd_daemon, "start, stop or ask the status of memvirtd"},
	{"config", cmd_config, "check a configuration file, or make memvirtd reload its own"},
	{"policies", cmd_policies, "list the built-in paging policies"},
	{"trace", cmd_trace, "replay, chart or summarise a trace that 'run --record' wrote"},
};
#define MEMVIRT_NCMDS (sizeof(memvirt_cmds) / sizeof(memvirt_cmds[0]))

static void memvirt_usage(FILE *f)
{
	fprintf(f, "usage: memvirt [--version] [--help] COMMAND [ARGS...]\n"
		   "\n"
		   "Runs GPU training jobs with more memory than their GPU has, and shows what they page.\n"
		   "\n"
		   "commands:\n");
	for (size_t i = 0; i < MEMVIRT_NCMDS; i++)
		fprintf(f, "  %-10s %s\n", memvirt_cmds[i].name, memvirt_cmds[i].summary);
	fprintf(f, "  %-10s %s\n", "help", "describe a command: memvirt help COMMAND");
	fprintf(f, "\n'memvirt COMMAND --help' lists a command's options; memvirt(1) has the details.\n");
}

/* Edit distance (insertions, deletions, substitutions, adjacent swaps), for suggestions only. */
static size_t memvirt_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	size_t *d, r;

	if (la > 64 || lb > 64)
		return (size_t)-1;
	d = xmalloc((la + 1) * (lb + 1) * sizeof(*d));
#define D(i, j) d[(i) * (lb + 1) + (j)]
	for (size_t i = 0; i <= la; i++)
		D(i, 0) = i;
	for (size_t j = 0; j <= lb; j++)
		D(0, j) = j;
	for (size_t i = 1; i <= la; i++) {
		for (size_t j = 1; j <= lb; j++) {
			size_t best = D(i - 1, j - 1) + (a[i - 1] != b[j - 1]);
			if (D(i - 1, j) + 1 < best)
				best = D(i - 1, j) + 1;
			if (D(i, j - 1) + 1 < best)
				best = D(i, j - 1) + 1;
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
			    D(i - 2, j - 2) + 1 < best)
				best = D(i - 2, j - 2) + 1;
			D(i, j) = best;
		}
	}
	r = D(la, lb);
#undef D
	free(d);
	return r;
}

const char *cli_closest(const char *word, const char *const *names)
{
	const char *best = NULL;
	size_t bestd = (size_t)-1, d, limit;

	for (size_t i = 0; names[i] != NULL; i++) {
		/* A prefix ("pol" for "policies") is the best hint there is. */
		if (word[0] != '\0' && strncmp(names[i], word, strlen(word)) == 0)
			d = 0;
		else
			d = memvirt_distance(word, names[i]);
		if (d < bestd) {
			bestd = d;
			best = names[i];
		}
	}
	/* Suggest only what is plausibly a typo: about a third of the word may differ. */
	limit = strlen(word) / 3 + 1;
	return bestd <= limit ? best : NULL;
}

int cli_exe_dir(char *buf, size_t len)
{
	ssize_t n;
	char *slash;

	n = readlink("/proc/self/exe", buf, len - 1);
	if (n <= 0 || (size_t)n >= len - 1)
		return -1;
	buf[n] = '\0';
	slash = strrchr(buf, '/');
	if (slash == NULL)
		return -1;
	*slash = '\0';
	return 0;
}

char *cli_memvirtd_path(char *buf, size_t len)
{
	char dir[PATH_MAX];
	int n;

	/* In the build tree memvirtd is daemon/memvirtd beside memvirt's cli/; installed in one
	 * directory (a GPU check bundle), it sits next to memvirt. */
	if (cli_exe_dir(dir, sizeof(dir)) == 0) {
		n = snprintf(buf, len, "%s/../daemon/memvirtd", dir);
		if (n > 0 && (size_t)n < len && access(buf, X_OK) == 0)
			return buf;
		n = snprintf(buf, len, "%s/memvirtd", dir);
		if (n > 0 && (size_t)n < len && access(buf, X_OK) == 0)
			return buf;
	}
#ifdef MV_SBINDIR
	n = snprintf(buf, len, "%s/memvirtd", MV_SBINDIR);
	if (n > 0 && (size_t)n < len && access(buf, X_OK) == 0)
		return buf;
#endif
	snprintf(buf, len, "memvirtd");
	return buf;
}

static int memvirt_unknown(const char *name)
{
	const char *names[MEMVIRT_NCMDS + 2];
	const char *guess;
	size_t i;

	for (i = 0; i < MEMVIRT_NCMDS; i++)
		names[i] = memvirt_cmds[i].name;
	names[i++] = "help";
	names[i] = NULL;
	guess = cli_closest(name, names);
	if (guess != NULL)
		fprintf(stderr, "memvirt: unknown command '%s'; did you mean '%s'?\n", name, guess);
	else
		fprintf(stderr, "memvirt: unknown command '%s'; 'memvirt --help' lists the commands\n",
			name);
	return 2;
}

static const struct memvirt_cmd *memvirt_find(const char *name)
{
	for (size_t i = 0; i < MEMVIRT_NCMDS; i++)
		if (strcmp(memvirt_cmds[i].name, name) == 0)
			return &memvirt_cmds[i];
	return NULL;
}

int main(int argc, char **argv)
{
	static const char *const memvirt_options[] = {"--help", "--version", NULL};
	const struct memvirt_cmd *cmd;
	const char *guess;
	char *help_argv[3];

	if (argc < 2) {
		memvirt_usage(stderr);
		return 2;
	}
	if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0) {
		printf("memvirt %s\n", PACKAGE_VERSION);
		return 0;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		memvirt_usage(stdout);
		return 0;
	}
	if (strcmp(argv[1], "help") == 0) {
		if (argc < 3) {
			memvirt_usage(stdout);
			return 0;
		}
		cmd = memvirt_find(argv[2]);
		if (cmd == NULL)
			return memvirt_unknown(argv[2]);
		help_argv[0] = argv[2];
		help_argv[1] = (char *)"--help";
		help_argv[2] = NULL;
		return cmd->fn(2, help_argv);
	}
	if (argv[1][0] == '-') {
		guess = cli_closest(argv[1], memvirt_options);
		if (guess != NULL)
			fprintf(stderr, "memvirt: unknown option '%s'; did you mean '%s'?\n", argv[1],
				guess);
		else
			fprintf(stderr, "memvirt: unknown option '%s'; 'memvirt --help' lists the "
					"commands\n", argv[1]);
		return 2;
	}
	cmd = memvirt_find(argv[1]);
	if (cmd == NULL)
		return memvirt_unknown(argv[1]);
	return cmd->fn(argc - 1, argv + 1);
}
