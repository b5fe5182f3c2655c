/* The Slurm SPANK plugin: srun --memvirt[=policy=P,budget=B] runs each task under libmemvirt.so. */
#include "config.h"

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <slurm/slurm.h>
#include <slurm/spank.h>

#include "policies/policy.h"
#include "protocol/units.h"
#include "protocol/profiles.h"

#ifndef MV_SPANK_LIBRARY
#error MV_SPANK_LIBRARY, the installed libmemvirt.so, comes from Makefile.am
#endif

/* What --memvirt and plugstack.conf asked for. Slurm runs the option callback in srun (where a bad
 * value stops the job before it is submitted) and again in slurmstepd, where the tasks start. */
static struct {
	int on;
	char policy[64];
	char budget[64];
	char library[PATH_MAX];
	char socket[PATH_MAX];
} want = {.library = MV_SPANK_LIBRARY};

/* Copies value into dst (of len bytes) if it fits; returns 0 or -1 after saying why. */
static int keep(char *dst, size_t len, const char *what, const char *value)
{
	if (strlen(value) >= len) {
		slurm_error("memvirt: %s=%s is longer than %zu bytes", what, value, len - 1);
		return -1;
	}
	memcpy(dst, value, strlen(value) + 1);
	return 0;
}

/* A policy the library knows, by the library's own table. */
static int check_policy(const char *v)
{
	char names[256] = "";
	size_t i, n = 0;

	if (mv_policy_find(v) != NULL)
		return keep(want.policy, sizeof(want.policy), "policy", v);
	for (i = 0; mv_policies[i] != NULL && n < sizeof(names); i++)
		n += (size_t)snprintf(names + n, sizeof(names) - n, "%s%s", i > 0 ? ", " : "",
				      mv_policies[i]->name);
	slurm_error("memvirt: --memvirt: policy=%s is not one of %s", v, names);
	return -1;
}

/* One budget, as MEMVIRT_BUDGET takes one: a size or a percentage of the device, and not nothing.
 * (The option's commas separate its settings, so it takes no per-device list.) */
static int check_budget(const char *v)
{
	uint64_t x;

	/* The whole is a terabyte, as in the library, so that only a budget of nothing reads as 0. */
	if (mv_parse_size_or_percent(v, UINT64_C(1) << 40, &x) != 0) {
		slurm_error("memvirt: --memvirt: budget=%s is not a size such as 6GiB or a percentage such as 40%%",
			    v);
		return -1;
	}
	if (x == 0) {
		slurm_error("memvirt: --memvirt: budget=%s leaves the job no device memory", v);
		return -1;
	}
	return keep(want.budget, sizeof(want.budget), "budget", v);
}

/* --memvirt, with an optional list of policy=P and budget=B separated by commas. */
static int opt_memvirt(int val, const char *optarg, int remote)
{
	char buf[256], *item, *save = NULL, *eq;
	int rc = 0;

	want.on = 1;
	if (optarg == NULL || *optarg == '\0')
		return 0;
	if (keep(buf, sizeof(buf), "--memvirt", optarg) != 0)
		return -1;
	for (item = strtok_r(buf, ",", &save); item != NULL && rc == 0; item = strtok_r(NULL, ",", &save)) {
		eq = strchr(item, '=');
		if (eq != NULL)
			*eq++ = '\0';
		if (eq != NULL && strcmp(item, "policy") == 0)
			rc = check_policy(eq);
		else if (eq != NULL && strcmp(item, "budget") == 0)
			rc = check_budget(eq);
		else {
			slurm_error("memvirt: --memvirt: '%s%s%s' is not policy=P or budget=B", item,
				    eq != NULL ? "=" : "", eq != NULL ? eq : "");
			rc = -1;
		}
	}
	return rc;
}

static struct spank_option memvirt_option = {
	"memvirt", "[policy=P,budget=B]",
	"Run each task under memvirt, joining the node's memvirtd: P is a paging policy (memvirt "
	"policies list), B a device budget such as 6GiB or 40%.",
	2, 0, opt_memvirt,
};

/* plugstack.conf's arguments: library=PATH (the libmemvirt.so to preload) and socket=PATH (the
 * daemon's socket, for tasks whose own discovery would not find it). */
static int plugin_args(int ac, char **av)
{
	int i;

	for (i = 0; i < ac; i++) {
		const char *a = av[i];
		char *dst = NULL;
		size_t len = 0;

		if (strncmp(a, "library=", 8) == 0) {
			dst = want.library;
			len = sizeof(want.library);
		} else if (strncmp(a, "socket=", 7) == 0) {
			dst = want.socket;
			len = sizeof(want.socket);
		}
		if (dst == NULL || strchr(a, '=')[1] != '/') {
			slurm_error("memvirt: plugstack.conf argument '%s' is not library=/PATH or socket=/PATH", a);
			return -1;
		}
		if (keep(dst, len, "plugstack.conf", strchr(a, '=') + 1) != 0)
			return -1;
	}
	return 0;
}

/* Sets var in the task's environment unless the user already set it there. */
static int set_default(spank_t sp, const char *var, const char *val)
{
	spank_err_t rc = spank_setenv(sp, var, val, 0);

	if (rc == ESPANK_SUCCESS || rc == ESPANK_ENV_EXISTS)
		return 0;
	slurm_error("memvirt: cannot set %s in the task's environment: %s", var, spank_strerror(rc));
	return -1;
}

/* Whether list, a preload list of paths separated by colons or spaces, names path. */
static int names(const char *list, const char *path)
{
	size_t n = strlen(path);
	const char *p;

	for (p = list; (p = strstr(p, path)) != NULL; p += n)
		if ((p == list || p[-1] == ':' || p[-1] == ' ') && (p[n] == '\0' || p[n] == ':' || p[n] == ' '))
			return 1;
	return 0;
}

/* Adds the library to LD_PRELOAD: after what the user preloads, which is kept as it is. */
static int preload(spank_t sp)
{
	char have[4096], both[sizeof(have) + PATH_MAX + 1];
	spank_err_t rc = spank_getenv(sp, "LD_PRELOAD", have, sizeof(have));

	if (rc == ESPANK_ENV_NOEXIST || (rc == ESPANK_SUCCESS && have[0] == '\0'))
		return spank_setenv(sp, "LD_PRELOAD", want.library, 1) == ESPANK_SUCCESS ? 0 : -1;
	if (rc != ESPANK_SUCCESS) {
		slurm_error("memvirt: cannot read the task's LD_PRELOAD: %s", spank_strerror(rc));
		return -1;
	}
	if (names(have, want.library))
		return 0;
	snprintf(both, sizeof(both), "%s:%s", have, want.library);
	return spank_setenv(sp, "LD_PRELOAD", both, 1) == ESPANK_SUCCESS ? 0 : -1;
}

/* The task's environment, for the framework profiles (protocol/profiles.c). */
static int task_get(void *ctx, const char *name, char *buf, size_t len)
{
	char scratch[8];
	spank_err_t rc = spank_getenv(ctx, name, buf != NULL ? buf : scratch, buf != NULL ? (int)len : (int)sizeof(scratch));

	/* A value longer than the buffer is still set. */
	return rc == ESPANK_SUCCESS || rc == ESPANK_NOSPACE;
}

static int task_set(void *ctx, const char *name, const char *value)
{
	return spank_setenv(ctx, name, value, 1) == ESPANK_SUCCESS ? 0 : -1;
}

/* The job's name in memvirt's statistics: slurm-JOB.STEP, the step by its name where Slurm has one. */
static void job_name(char *buf, size_t len, uint32_t job, uint32_t step)
{
	if (step == SLURM_BATCH_SCRIPT)
		snprintf(buf, len, "slurm-%u.batch", (unsigned)job);
	else if (step == SLURM_EXTERN_CONT)
		snprintf(buf, len, "slurm-%u.extern", (unsigned)job);
	else if (step == SLURM_INTERACTIVE_STEP)
		snprintf(buf, len, "slurm-%u.interactive", (unsigned)job);
	else
		snprintf(buf, len, "slurm-%u.%u", (unsigned)job, (unsigned)step);
}

/* The task's environment: in slurmstepd, in the task after fork and before exec. */
static int task_env(spank_t sp)
{
	const struct mv_env env = {task_get, task_set, sp};
	uint32_t job, step;
	char name[64];
	int notes;

	if (spank_get_item(sp, S_JOB_ID, &job) != ESPANK_SUCCESS ||
	    spank_get_item(sp, S_JOB_STEPID, &step) != ESPANK_SUCCESS) {
		slurm_error("memvirt: Slurm did not say the task's job and step");
		return -1;
	}
	job_name(name, sizeof(name), job, step);
	if (preload(sp) != 0) {
		slurm_error("memvirt: cannot add %s to the task's LD_PRELOAD", want.library);
		return -1;
	}
	if (set_default(sp, "MEMVIRT_JOB", name) != 0 || set_default(sp, "MEMVIRT_GROUP", name) != 0)
		return -1;
	if (want.policy[0] != '\0' && set_default(sp, "MEMVIRT_POLICY", want.policy) != 0)
		return -1;
	if (want.budget[0] != '\0' && set_default(sp, "MEMVIRT_BUDGET", want.budget) != 0)
		return -1;
	if (want.socket[0] != '\0' && set_default(sp, "MEMVIRT_SOCKET", want.socket) != 0)
		return -1;
	/* As memvirt run does: each framework's allocator hands memvirt every buffer, unless the
	 * user chose that framework's allocator. */
	notes = mv_profiles_apply(&env);
	if (notes < 0) {
		slurm_error("memvirt: cannot set a framework profile in the task's environment");
		return -1;
	}
	for (int note = 1; note <= MV_PROFILE_NOTE_EXPANDABLE; note <<= 1)
		if (notes & note)
			slurm_info("memvirt: note: %s", mv_profiles_note(note));
	return 0;
}

/* What Slurm looks up by name; everything else in the plugin is hidden. */
#pragma GCC visibility push(default)

SPANK_PLUGIN(memvirt, 1)

int slurm_spank_init(spank_t sp, int ac, char **av)
{
	if (plugin_args(ac, av) != 0)
		return -1;
	/* srun takes the option and slurmstepd receives it; sbatch and salloc do not offer it. */
	if (spank_context() != S_CTX_LOCAL && spank_context() != S_CTX_REMOTE)
		return 0;
	return spank_option_register(sp, &memvirt_option) == ESPANK_SUCCESS ? 0 : -1;
}

int slurm_spank_task_init(spank_t sp, int ac, char **av)
{
	if (!want.on || !spank_remote(sp))
		return 0;
	return task_env(sp);
}

#pragma GCC visibility pop
