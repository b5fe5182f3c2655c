/* memvirt config: check a configuration file, or have the daemon reload its own. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "cli/internal.h"
#include "daemon/conf.h"
#include "protocol/units.h"

static const char usage_text[] =
	"usage: memvirt config check FILE\n"
	"       memvirt config reload [--socket PATH]\n"
	"\n"
	"  check FILE  check FILE as memvirt.json(5); print \"FILE: ok\" and the settings it makes\n"
	"  reload      have the running memvirtd read its configuration file again\n";

static int usage(FILE *f, int status)
{
	fputs(usage_text, f);
	return status;
}

static int is_help(const char *arg)
{
	return strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0;
}

/* Prints the effective settings as one line. */
static void summary(const struct mvd_config *c)
{
	char min[32], slab[32], host[32];

	mv_format_size(c->defaults.min, min, sizeof(min));
	mv_format_size(c->slab_threshold, slab, sizeof(slab));
	if (c->host_limit != 0)
		mv_format_size(c->host_limit, host, sizeof(host));
	else
		snprintf(host, sizeof(host), "the library default");
	printf("budget %s per device; log %s to %s; socket %s; default job weight %u, min %s, "
	       "policy %s; %zu other job%s; slab threshold %s; host limit %s; safety net %s\n",
	       c->device_budget, c->log_level, c->log_file != NULL ? c->log_file : "stderr",
	       c->socket != NULL ? c->socket : "default", (unsigned)c->defaults.weight, min,
	       c->defaults.policy, c->njobs, c->njobs == 1 ? "" : "s", slab, host,
	       c->safety_net ? "on" : "off");
	if (c->host_limit_spec != NULL)
		printf("node host limit %s, divided among the processes\n", c->host_limit_spec);
}

static const char *const config_actions[] = {"check", "reload", NULL};
static const char *const config_check_options[] = {"--help", NULL};

/* "PROG: unknown WHAT 'WORD'", with the closest of names when one is close. */
static void config_unknown(const char *prog, const char *what, const char *word,
			   const char *const *names)
{
	const char *guess = cli_closest(word, names);

	if (guess != NULL)
		fprintf(stderr, "%s: unknown %s '%s'; did you mean '%s'?\n", prog, what, word, guess);
	else
		fprintf(stderr, "%s: unknown %s '%s'; '%s --help' lists them\n", prog, what, word,
			prog);
}

static int config_check(int argc, char **argv)
{
	struct mvd_config *c;
	const char *file = NULL;
	char err[1024];
	int i = 1;

	if (argc > 1 && is_help(argv[1]))
		return usage(stdout, 0);
	/* "--" lets a file name start with a dash. */
	if (i < argc && strcmp(argv[i], "--") == 0)
		i++;
	else if (i < argc && argv[i][0] == '-' && argv[i][1] != '\0') {
		config_unknown("memvirt config check", "option", argv[i], config_check_options);
		return 2;
	}
	if (argc - i != 1)
		return usage(stderr, 2);
	file = argv[i];
	if (mvd_config_load(file, &c, err, sizeof(err)) != 0) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	printf("%s: ok\n", file);
	summary(c);
	mvd_config_free(c);
	return 0;
}

int cmd_config(int argc, char **argv)
{
	if (argc < 2)
		return usage(stderr, 2);
	if (is_help(argv[1]))
		return usage(stdout, 0);
	if (strcmp(argv[1], "check") == 0)
		return config_check(argc - 1, argv + 1);
	if (strcmp(argv[1], "reload") == 0)
		return cmd_config_reload(argc - 1, argv + 1);
	config_unknown("memvirt config", "action", argv[1], config_actions);
	return 2;
}
