/* memvirt policies: lists the built-in paging policies, one line each. */
/* Angle brackets: "config.h" would find daemon/config.h, the daemon's configuration, first. */
#include <config.h>

#include <stdio.h>
#include <string.h>

#include "daemon/cli.h"
#include "daemon/config.h"

/* What each policy does, in one line; memvirt-policies(7) has the rest. The names themselves come
 * from mvd_policies, so a policy the daemon knows is never missing here, only undescribed. */
static const struct {
	const char *name;
	const char *line;
} policies_lines[] = {
	{"lru", "reactive demand paging: evicts the least recently used buffer when the budget is "
		"short, pages it back in when a launch needs it"},
};

static const char *policies_describe(const char *name)
{
	for (size_t i = 0; i < sizeof(policies_lines) / sizeof(policies_lines[0]); i++)
		if (strcmp(policies_lines[i].name, name) == 0)
			return policies_lines[i].line;
	return "(no description yet)";
}

static void policies_usage(FILE *f)
{
	fprintf(f, "usage: memvirt policies\n"
		   "\n"
		   "Lists the built-in paging policies, the values 'memvirt run --policy' and a\n"
		   "configuration's jobs.*.policy accept. memvirt-policies(7) describes each.\n"
		   "\n"
		   "  --help   print this and exit\n");
}

int cmd_policies(int argc, char **argv)
{
	size_t width = 0;

	if (argc > 1) {
		if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
			policies_usage(stdout);
			return 0;
		}
		fprintf(stderr, "memvirt policies: unexpected argument '%s'\n", argv[1]);
		policies_usage(stderr);
		return 2;
	}
	for (size_t i = 0; mvd_policies[i] != NULL; i++)
		if (strlen(mvd_policies[i]) > width)
			width = strlen(mvd_policies[i]);
	for (size_t i = 0; mvd_policies[i] != NULL; i++)
		printf("%-*s  %s\n", (int)width, mvd_policies[i], policies_describe(mvd_policies[i]));
	return 0;
}
