/* The planning options that run and trace share (--policy, --lookahead, --page-min), and the
 * reading of any planning knob's option against the range policies/params.c gives it. */
#include "config.h"

#include <stdio.h>

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
