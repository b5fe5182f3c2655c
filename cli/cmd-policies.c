/* memvirt policies: lists the built-in paging policies, one line each, from the policies' registry. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "cli/internal.h"
#include "policies/policy.h"

static void policies_usage(FILE *f)
{
	fprintf(f, "usage: memvirt policies\n"
		   "\n"
		   "Lists the built-in paging policies, the values 'memvirt run --policy',\n"
		   "'memvirt trace replay --policy' and a configuration's jobs.*.policy accept.\n"
		   "memvirt-policies(7) describes each.\n"
		   "\n"
		   "  --help   print this and exit\n");
}

int cmd_policies(int argc, char **argv)
{
	static const char *const options[] = {"--help", NULL};
	const char *guess;
	size_t width = 0;

	if (argc > 1) {
		if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
			policies_usage(stdout);
			return 0;
		}
		guess = argv[1][0] == '-' ? cli_closest(argv[1], options) : NULL;
		if (guess != NULL)
			fprintf(stderr, "memvirt policies: unknown option '%s'; did you mean '%s'?\n",
				argv[1], guess);
		else
			fprintf(stderr, "memvirt policies: unexpected argument '%s'\n", argv[1]);
		policies_usage(stderr);
		return 2;
	}
	for (size_t i = 0; mv_policies[i] != NULL; i++)
		if (strlen(mv_policies[i]->name) > width)
			width = strlen(mv_policies[i]->name);
	for (size_t i = 0; mv_policies[i] != NULL; i++)
		printf("%-*s  %s\n", (int)width, mv_policies[i]->name, mv_policies[i]->summary);
	return 0;
}

int cli_policy_check(const char *prog, const char *name)
{
	const char *names[16], *guess;
	size_t n = 0;

	for (size_t i = 0; mv_policies[i] != NULL && n + 1 < sizeof(names) / sizeof(names[0]); i++) {
		if (strcmp(mv_policies[i]->name, name) == 0)
			return 0;
		names[n++] = mv_policies[i]->name;
	}
	names[n] = NULL;
	guess = cli_closest(name, names);
	fprintf(stderr, "%s: unknown policy '%s'", prog, name);
	if (guess != NULL)
		fprintf(stderr, "; did you mean '%s'?", guess);
	fprintf(stderr, " (known policies:");
	for (size_t i = 0; i < n; i++)
		fprintf(stderr, " %s", names[i]);
	fprintf(stderr, ")\n");
	return -1;
}
