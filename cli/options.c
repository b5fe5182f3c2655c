/* The planning options that run and trace share (--policy, --lookahead, --page-min), the
 * reading of any planning knob's option against the range policies/params.c gives it, and the
 * one report of an option getopt_long refused. */
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/internal.h"
#include "policies/policy.h"

void cli_plan_init(struct cli_plan *p)
{
	p->policy = p->lookahead = p->page_min = NULL;
	mv_policy_defaults(&p->knobs);
}

int cli_knob_option(const char *prog, const char *option, const char *knob, const char *arg,
		    struct mv_knob_value *out)
{
	char msg[256];

	if (mv_knob_parse(mv_knob_find(knob), arg, MV_KNOB_INTERVAL, out, msg, sizeof(msg)) == 0)
		return 0;
	fprintf(stderr, "%s: %s %s\n", prog, option, msg);
	return -1;
}

int cli_plan_option(const char *prog, int opt, const char *arg, struct cli_plan *p)
{
	struct mv_knob_value v;

	switch (opt) {
	case CLI_OPT_POLICY:
		if (cli_policy_check(prog, arg) < 0)
			return -1;
		p->policy = arg;
		return 0;
	case CLI_OPT_LOOKAHEAD:
		if (cli_knob_option(prog, "--lookahead", "lookahead", arg, &v) < 0)
			return -1;
		p->lookahead = arg;
		p->knobs.lookahead = (uint32_t)v.u;
		return 0;
	case CLI_OPT_PAGE_MIN:
		if (cli_knob_option(prog, "--page-min", "page_min", arg, &v) < 0)
			return -1;
		p->page_min = arg;
		p->knobs.min_size = v.u;
		return 0;
	}
	return -1;
}

int cli_plan_check(const char *prog, struct cli_plan *p)
{
	if (p->policy != NULL && cli_plan_option(prog, CLI_OPT_POLICY, p->policy, p) < 0)
		return -1;
	if (p->lookahead != NULL && cli_plan_option(prog, CLI_OPT_LOOKAHEAD, p->lookahead, p) < 0)
		return -1;
	if (p->page_min != NULL && cli_plan_option(prog, CLI_OPT_PAGE_MIN, p->page_min, p) < 0)
		return -1;
	return 0;
}

/* The long options whose names begin with word's first n characters: how many, and the first.
 * A name that is exactly those characters is the one meant, as getopt_long takes it, however
 * many longer names begin with it (--budget beside --budget-per-process). */
static int option_prefixed(const char *word, size_t n, const struct option *opts,
			   const struct option **first)
{
	int count = 0;

	*first = NULL;
	for (size_t i = 0; opts[i].name != NULL; i++) {
		if (strncmp(opts[i].name, word, n) == 0 && opts[i].name[n] == '\0') {
			*first = &opts[i];
			return 1;
		}
	}
	for (size_t i = 0; opts[i].name != NULL; i++) {
		if (strncmp(opts[i].name, word, n) != 0)
			continue;
		if (count++ == 0)
			*first = &opts[i];
	}
	return count;
}

/* A long option getopt_long refused: unknown, ambiguous, or given a value it does not take. */
static void option_long_error(const char *prog, const char *arg, const struct option *opts)
{
	const char *names[64], *guess, *word = arg + 2, *eq = strchr(arg, '=');
	size_t n = eq != NULL ? (size_t)(eq - word) : strlen(word), k = 0;
	const struct option *o;
	char name[64];

	if (option_prefixed(word, n, opts, &o) == 1) {
		/* The only option it can mean: what getopt_long refused is the value. */
		if (o->has_arg == no_argument)
			fprintf(stderr, "%s: option '--%s' takes no value\n", prog, o->name);
		else
			fprintf(stderr, "%s: option '--%s' needs a value\n", prog, o->name);
		return;
	}
	if (n > 0 && option_prefixed(word, n, opts, &o) > 1) {
		fprintf(stderr, "%s: option '%.*s' is ambiguous; it could be", prog, (int)(n + 2), arg);
		for (size_t i = 0; opts[i].name != NULL; i++)
			if (strncmp(opts[i].name, word, n) == 0)
				fprintf(stderr, " --%s", opts[i].name);
		fputc('\n', stderr);
		return;
	}
	snprintf(name, sizeof(name), "%.*s", (int)n, word);
	for (size_t i = 0; opts[i].name != NULL && k + 1 < sizeof(names) / sizeof(names[0]); i++)
		names[k++] = opts[i].name;
	names[k] = NULL;
	guess = cli_closest(name, names);
	if (guess != NULL)
		fprintf(stderr, "%s: unknown option '--%s'; did you mean '--%s'?\n", prog, name, guess);
	else
		fprintf(stderr, "%s: unknown option '--%s'; '%s --help' lists the options\n", prog, name,
			prog);
}

void cli_option_error(const char *prog, int c, char **argv, const struct option *opts)
{
	const char *arg = optind > 0 ? argv[optind - 1] : "";

	if (strncmp(arg, "--", 2) == 0 && arg[2] != '\0') {
		option_long_error(prog, arg, opts);
		return;
	}
	if (c == ':')
		fprintf(stderr, "%s: option '-%c' needs a value\n", prog, optopt);
	else if (optopt != 0)
		fprintf(stderr, "%s: unknown option '-%c'; '%s --help' lists the options\n", prog,
			optopt, prog);
	else
		fprintf(stderr, "%s: unknown option '%s'; '%s --help' lists the options\n", prog, arg,
			prog);
}
