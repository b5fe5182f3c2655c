/* The real driver: loaded with dlopen (never taken from the library itself), one pointer per entry
 * point memvirt hooks or uses. Also the dlsym hook, the second of the three ways in. */
#include "config.h"

#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

#include "interpose/internal.h"

struct mv_real mv_real;

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int loaded = -1;
static void *real_handle;

typedef void *(*dlsym_fn)(void *, const char *);
static dlsym_fn real_dlsym;

/* A sanitizer runtime looks up the functions it intercepts with dlsym(RTLD_NEXT, ...) while it
 * initialises, before its shadow memory exists, and that lookup lands in this library's dlsym. In a
 * sanitizer build that path must therefore not be instrumented; elsewhere the attribute changes
 * nothing. */
#define MV_NO_SANITIZE __attribute__((no_sanitize_address, no_sanitize_thread))

/* The real dlsym, found by version so that this library's own dlsym is not found instead. */
static MV_NO_SANITIZE dlsym_fn find_dlsym(void)
{
	static const char *versions[] = {"GLIBC_2.34", "GLIBC_2.2.5", "GLIBC_2.17", "GLIBC_2.0"};
	for (size_t i = 0; i < sizeof(versions) / sizeof(versions[0]); i++) {
		void *p = dlvsym(RTLD_NEXT, "dlsym", versions[i]);
		if (p != NULL)
			return (dlsym_fn)p;
	}
	return NULL;
}

/* fork: no lock may be held by a thread the child will not have. */
static void fork_prepare(void)
{
	mv_exec_fork_prepare();
	mv_lock();
}

static void fork_parent(void)
{
	mv_unlock();
	mv_exec_fork_parent();
}

static void fork_child(void)
{
	mv_unlock();
	mv_exec_forked();
	mv_pager_forked();
	mv_link_forked();
}

/* Set while this thread loads the driver: a dlsym the driver's own start-up makes must not wait
 * for the load it is part of. */
static __thread int loading;

static MV_NO_SANITIZE void *lookup(void *handle, const char *name);

static void load(void)
{
	const char *path;

	mv_config_load();
	pthread_atfork(fork_prepare, fork_parent, fork_child);
	real_dlsym = find_dlsym();
	if (real_dlsym == NULL) {
		mv_log(MV_LOG_ERROR, "cannot find the C library's dlsym; memvirt is inactive");
		return;
	}
	path = getenv("MEMVIRT_REAL_LIBCUDA");
	if (path == NULL || *path == '\0')
		path = "libcuda.so.1";
	loading = 1;
	real_handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	loading = 0;
	if (real_handle == NULL) {
		mv_log(MV_LOG_ERROR, "cannot load the CUDA driver %s: %s", path, dlerror());
		return;
	}
#define MV_HOOK(sym) mv_real.sym = (__typeof__(sym) *)real_dlsym(real_handle, #sym);
#define MV_DRIVER(sym) MV_HOOK(sym)
#include "interpose/hooks.def"
#include "interpose/driver.def"
#undef MV_HOOK
#undef MV_DRIVER
	loaded = 0;
	mv_log(MV_LOG_DEBUG, "loaded the CUDA driver from %s", path);
}

int mv_init(void)
{
	pthread_once(&once, load);
	return loaded;
}

/* The test seam: the one place the library asks the simulated driver (tests/simcuda) something a
 * real driver does not have. The symbol is looked up, never linked to, so on a GPU it is absent and
 * the answer is 0. */
int mv_seam_sim_model_only(void)
{
	int (*model_only)(void);

	if (real_dlsym == NULL || real_handle == NULL)
		return 0;
	model_only = (int (*)(void))real_dlsym(real_handle, "simcuda_model_only");
	return model_only != NULL && model_only();
}

/* Runs inside a sanitizer runtime's start-up too (RTLD_DEFAULT lookups): until the name is known to
 * be a driver's, it calls nothing but the C library's dlsym and reads no thread-local variable,
 * since the runtime's interceptors of strncmp and __tls_get_addr do not work yet. */
static MV_NO_SANITIZE void *lookup(void *handle, const char *name)
{
	void *p, *hook;

	if (real_dlsym == NULL)
		return NULL;
	p = real_dlsym(handle, name);
	if (p == NULL || name[0] != 'c' || name[1] != 'u' || loading)
		return p;
	if (mv_init() != 0)
		return p;
	hook = mv_hook_for(name);
	/* The hook only stands in for the driver's own symbol, not a same-named one elsewhere. */
	if (hook != NULL && p == real_dlsym(real_handle, name))
		return hook;
	return p;
}

/* dlsym on the driver's handle answers with the hook, so programs that look the driver up by hand
 * (PyTorch before 2.8 does) are covered too. Any other lookup is the C library's. RTLD_NEXT is
 * resolved by the C library relative to its caller, so it is passed on as a tail call: the caller's
 * return address is then the one the C library sees. */
MV_EXPORT __attribute__((optimize("optimize-sibling-calls"))) MV_NO_SANITIZE void *dlsym(void *handle,
											const char *name)
{
	dlsym_fn next = real_dlsym;

	if (next == NULL)
		next = real_dlsym = find_dlsym();
	if (handle == RTLD_NEXT && next != NULL)
		return next(handle, name);
	return lookup(handle, name);
}
