/* libFuzzer target: a memvirt.json through the config loader. A refused file's message must name
 * the file and a line inside it; an accepted one must hold only values the schema allows. */
#include "config.h"

#include <stdint.h>
#include <string.h>

#include "daemon/conf.h"
#include "policies/policy.h"
#include "tests/fuzz/fuzz.h"

#define NAME "fuzz.json"

static int known(const char *s, const char *const *names)
{
	for (; *names != NULL; names++)
		if (strcmp(s, *names) == 0)
			return 1;
	return 0;
}

static void check_job(const struct mvd_config *c, const struct mvd_job *j)
{
	FUZZ_CHECK(j->weight >= 1 && j->weight <= 1000);
	FUZZ_CHECK(j->policy != NULL && mv_policy_find(j->policy) != NULL);
	FUZZ_CHECK(j->name != NULL);
	FUZZ_CHECK(mvd_config_job(c, j->name) == j || strcmp(j->name, "default") == 0);
}

static void check_accepted(const struct mvd_config *c)
{
	static const char *const levels[] = {"debug", "info", "warn", "error", NULL};
	static const uint64_t totals[] = {0, 1, 80ull << 30, UINT64_MAX};

	FUZZ_CHECK(strcmp(c->path, NAME) == 0);
	FUZZ_CHECK(c->log_level != NULL && known(c->log_level, levels));
	FUZZ_CHECK(c->log_file == NULL || c->log_file[0] != '\0');
	FUZZ_CHECK(c->socket == NULL || (c->socket[0] != '\0' && strlen(c->socket) < 108));
	FUZZ_CHECK(c->device_budget != NULL);
	for (size_t i = 0; i < sizeof(totals) / sizeof(totals[0]); i++)
		FUZZ_CHECK(mvd_config_device_budget(c, totals[i]) <= totals[i]);
	check_job(c, &c->defaults);
	for (size_t i = 0; i < c->njobs; i++) {
		FUZZ_CHECK(c->jobs[i].name[0] != '\0' && strcmp(c->jobs[i].name, "default") != 0);
		check_job(c, &c->jobs[i]);
	}
}

/* "fuzz.json:LINE:COL: ..." with LINE inside the text, or "fuzz.json: ...". */
static void check_refused(const char *err, const uint8_t *data, size_t size)
{
	size_t lines = 1;
	int line, col, at = 0;

	FUZZ_CHECK(strncmp(err, NAME ":", strlen(NAME ":")) == 0);
	FUZZ_CHECK(strchr(err, '\n') == NULL);
	if (sscanf(err, NAME ":%d:%d:%n", &line, &col, &at) == 2 && at > 0) {
		for (size_t i = 0; i < size; i++)
			lines += data[i] == '\n';
		FUZZ_CHECK(line >= 1 && (size_t)line <= lines);
		FUZZ_CHECK(col >= 1);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mvd_config *c = NULL;
	char err[512];

	err[0] = '\0';
	if (mvd_config_parse(NAME, (const char *)data, size, &c, err, sizeof(err)) == 0) {
		FUZZ_CHECK(c != NULL);
		check_accepted(c);
		mvd_config_free(c);
	} else {
		check_refused(err, data, size);
	}
	return 0;
}
