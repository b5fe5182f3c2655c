/* Buffer identity: an allocation's call site, a hash of the app's innermost stack frames above
 * memvirt's own. libunwind's per-thread cache keeps a repeated call chain cheap to walk. */
#include "config.h"

#define UNW_LOCAL_ONLY
#include <link.h>
#include <libunwind.h>
#include <string.h>

#include "interpose/internal.h"

#define MV_SITE_FRAMES 6    /* the app's frames hashed */
#define MV_SITE_DEPTH 24    /* frames unwound at most, memvirt's own included */
/* memvirt's own text, whose frames are skipped. */
static uintptr_t self_lo, self_hi;
static pthread_once_t self_once = PTHREAD_ONCE_INIT;

static int find_self(struct dl_phdr_info *info, size_t size, void *arg)
{
	uintptr_t me = (uintptr_t)arg;

	(void)size;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
		if (ph->p_type == PT_LOAD && me >= lo && me < lo + ph->p_memsz) {
			self_lo = lo;
			self_hi = lo + ph->p_memsz;
			return 1;
		}
	}
	return 0;
}

static uint64_t mix(uint64_t h, uint64_t v)
{
	h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
	h *= 0xff51afd7ed558ccdull;
	return h ^ (h >> 29);
}

static uint64_t unwind_hash(void)
{
	void *ips[MV_SITE_DEPTH];
	int n = unw_backtrace(ips, MV_SITE_DEPTH), used = 0;
	uint64_t h = 0xcbf29ce484222325ull;

	for (int i = 0; i < n && used < MV_SITE_FRAMES; i++) {
		uintptr_t ip = (uintptr_t)ips[i];
		if (ip >= self_lo && ip < self_hi)
			continue;
		h = mix(h, ip);
		used++;
	}
	return h != 0 ? h : 1;
}

static void site_init(void)
{
	dl_iterate_phdr(find_self, (void *)(uintptr_t)&mv_site_hash);
	/* Unwind information is cached per thread: a repeated call chain is cheap to walk again. */
	unw_set_caching_policy(unw_local_addr_space, UNW_CACHE_PER_THREAD);
}

uint64_t mv_site_hash(void)
{
	pthread_once(&self_once, site_init);
	return unwind_hash();
}
