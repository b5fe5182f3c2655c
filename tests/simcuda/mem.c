/* Device memory: the address window, physical allocations, the mapping table, cuMemAlloc, pinned host
 * memory, the default memory pool and the fault net that turns a stray access into an error.
 *
 * Device addresses are real host addresses inside one large PROT_NONE window, so a kernel running
 * on the host dereferences them directly. A physical allocation is shared anonymous memory; mapping
 * it duplicates its pages at the device address with mremap, so the same pages can sit at any
 * address and unmapping puts PROT_NONE back. */
#include "config.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "tests/simcuda/internal.h"

pthread_mutex_t sim_mem_lock = PTHREAD_MUTEX_INITIALIZER;

static char *va_base;
/* Device memory charged: in all (what simcuda_mem_usage reports) and per device (its capacity). */
static uint64_t used_bytes, peak_bytes;
static uint64_t dev_used[SIM_MAX_DEVICES];

/* A sorted array of records whose first member is their start address. */
struct vec {
	void *v;
	size_t n, cap, esz;
};

struct range {
	uint64_t addr, size;
};

struct resv {
	uint64_t va, size;
	int internal; /* made by cuMemAlloc, not by cuMemAddressReserve */
	uint64_t id;  /* its BUFFER_ID */
};

struct alloc {
	uint64_t va, size, vsize; /* vsize: the reserved, page-rounded span */
	struct sim_phys *phys;
	uint64_t id;          /* its BUFFER_ID */
	struct sim_ctx *ctx;  /* current when it was made */
	int pool;             /* from the default pool (cuMemAllocAsync), not cuMemAlloc */
};

struct pinned {
	uint64_t addr, size;
	unsigned flags;
	int owned; /* from cuMemHostAlloc (ours to unmap) rather than cuMemHostRegister */
	uint64_t id;
	struct sim_ctx *ctx;
};

static void pool_account(const struct alloc *a, int sign);

/* Buffer and memory block IDs: unique in the process, never reused. Guarded by sim_mem_lock. */
static uint64_t next_id;

/* All guarded by sim_mem_lock. */
static struct vec free_va = {.esz = sizeof(struct range)};
static struct vec resvs = {.esz = sizeof(struct resv)};
static struct vec maps = {.esz = sizeof(struct sim_map)};
static struct vec allocs = {.esz = sizeof(struct alloc)};
static struct vec pins = {.esz = sizeof(struct pinned)};

static void *vec_at(struct vec *a, size_t i)
{
	return (char *)a->v + i * a->esz;
}

static uint64_t vec_key(struct vec *a, size_t i)
{
	return *(uint64_t *)vec_at(a, i);
}

/* Index of the first record whose start is greater than key. */
static size_t vec_upper(struct vec *a, uint64_t key)
{
	size_t lo = 0, hi = a->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (vec_key(a, mid) <= key)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static int vec_insert(struct vec *a, const void *e)
{
	size_t at;

	if (a->n == a->cap) {
		size_t cap = a->cap ? a->cap * 2 : 64;
		void *v = realloc(a->v, cap * a->esz);
		if (v == NULL)
			return -1;
		a->v = v;
		a->cap = cap;
	}
	at = vec_upper(a, *(const uint64_t *)e);
	memmove(vec_at(a, at + 1), vec_at(a, at), (a->n - at) * a->esz);
	memcpy(vec_at(a, at), e, a->esz);
	a->n++;
	return 0;
}

static void vec_remove(struct vec *a, size_t at)
{
	memmove(vec_at(a, at), vec_at(a, at + 1), (a->n - at - 1) * a->esz);
	a->n--;
}

/* Index of the record whose [start, start+size) holds addr, given the size's offset in the record;
 * -1 when none does. */
static ssize_t vec_find(struct vec *a, uint64_t addr)
{
	size_t i = vec_upper(a, addr);

	if (i == 0)
		return -1;
	i--;
	/* Every record type here has its size right after its start. */
	if (addr - vec_key(a, i) < ((uint64_t *)vec_at(a, i))[1])
		return (ssize_t)i;
	return -1;
}

/* ---- the fault net ---- */

static struct sigaction old_segv, old_bus;
static __thread sigjmp_buf *fault_jmp;

static void on_fault(int sig, siginfo_t *si, void *uc)
{
	uint64_t addr = (uint64_t)(uintptr_t)si->si_addr;
	struct sigaction *old = sig == SIGSEGV ? &old_segv : &old_bus;

	if (fault_jmp != NULL && sim_is_device_addr(addr))
		siglongjmp(*fault_jmp, 1);
	/* Not ours: hand it to whoever was there before. */
	if (old->sa_flags & SA_SIGINFO) {
		old->sa_sigaction(sig, si, uc);
	} else if (old->sa_handler == SIG_DFL || old->sa_handler == SIG_IGN) {
		sigaction(sig, old, NULL);
	} else {
		old->sa_handler(sig);
	}
}

/* The engines' accesses to device memory race with the host and with each other exactly when a
 * program's stream ordering is wrong, which tests detect as wrong data (some on purpose). They are
 * the simulated GPU's accesses, not data races between host threads, so ThreadSanitizer is told to
 * ignore them. */
#ifdef __SANITIZE_THREAD__
void __tsan_ignore_thread_begin(void);
void __tsan_ignore_thread_end(void);
#define ENGINE_ACCESS_BEGIN() __tsan_ignore_thread_begin()
#define ENGINE_ACCESS_END() __tsan_ignore_thread_end()
#else
#define ENGINE_ACCESS_BEGIN() ((void)0)
#define ENGINE_ACCESS_END() ((void)0)
#endif

int sim_guarded(int (*fn)(void *), void *arg)
{
	sigjmp_buf jb;
	int r;

	ENGINE_ACCESS_BEGIN();
	if (sigsetjmp(jb, 1) != 0) {
		fault_jmp = NULL;
		ENGINE_ACCESS_END();
		return -1;
	}
	fault_jmp = &jb;
	r = fn(arg);
	fault_jmp = NULL;
	ENGINE_ACCESS_END();
	return r;
}

void sim_mem_init(void)
{
	struct sigaction sa;
	struct range all;

	va_base = mmap(NULL, SIM_VA_SIZE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (va_base == MAP_FAILED) {
		fprintf(stderr, "simcuda: cannot reserve the %llu GiB device address window\n",
			(unsigned long long)(SIM_VA_SIZE >> 30));
		abort();
	}
	/* Start on a 2 MiB boundary so that granularity-aligned reservations are possible. */
	all.addr = ((uint64_t)(uintptr_t)va_base + SIM_GRANULARITY - 1) & ~(SIM_GRANULARITY - 1);
	all.size = (uint64_t)(uintptr_t)va_base + SIM_VA_SIZE - all.addr;
	vec_insert(&free_va, &all);

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_fault;
	sa.sa_flags = SA_SIGINFO | SA_NODEFER;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGSEGV, &sa, &old_segv);
	sigaction(SIGBUS, &sa, &old_bus);
}

int sim_is_device_addr(uint64_t addr)
{
	uint64_t base = (uint64_t)(uintptr_t)va_base;
	return va_base != NULL && addr >= base && addr - base < SIM_VA_SIZE;
}

/* ---- address space ---- */

int sim_va_alloc(uint64_t size, uint64_t align, uint64_t hint, uint64_t *out)
{
	struct range *r;

	if (align == 0)
		align = 4096;
	/* A hint is honoured when the exact range is free, as the driver does. */
	if (hint != 0 && hint % align == 0) {
		ssize_t i = vec_find(&free_va, hint);
		if (i >= 0) {
			r = vec_at(&free_va, (size_t)i);
			if (hint + size <= r->addr + r->size) {
				struct range tail = {hint + size, r->addr + r->size - (hint + size)};
				if (hint == r->addr)
					vec_remove(&free_va, (size_t)i);
				else
					r->size = hint - r->addr;
				if (tail.size > 0 && vec_insert(&free_va, &tail) != 0)
					return -1;
				*out = hint;
				return 0;
			}
		}
	}
	for (size_t i = 0; i < free_va.n; i++) {
		uint64_t start, end;
		r = vec_at(&free_va, i);
		start = (r->addr + align - 1) & ~(align - 1);
		end = r->addr + r->size;
		if (start < r->addr || start + size > end || start + size < start)
			continue;
		{
			struct range head = {r->addr, start - r->addr};
			struct range tail = {start + size, end - (start + size)};
			vec_remove(&free_va, i);
			if (head.size > 0)
				vec_insert(&free_va, &head);
			if (tail.size > 0)
				vec_insert(&free_va, &tail);
		}
		*out = start;
		return 0;
	}
	return -1;
}

void sim_va_free(uint64_t addr, uint64_t size)
{
	struct range r = {addr, size};
	size_t i;

	vec_insert(&free_va, &r);
	/* Coalesce with both neighbours. */
	i = vec_upper(&free_va, addr) - 1;
	if (i + 1 < free_va.n) {
		struct range *a = vec_at(&free_va, i), *b = vec_at(&free_va, i + 1);
		if (a->addr + a->size == b->addr) {
			a->size += b->size;
			vec_remove(&free_va, i + 1);
		}
	}
	if (i > 0) {
		struct range *a = vec_at(&free_va, i - 1), *b = vec_at(&free_va, i);
		if (a->addr + a->size == b->addr) {
			a->size += b->size;
			vec_remove(&free_va, i);
		}
	}
}

/* ---- physical memory ---- */

/* counted: charged against dev's capacity here (a graph allocation's pages are charged by the
 * allocation instead). */
static CUresult phys_make(uint64_t size, int host_located, int dev, int counted, struct sim_phys **out)
{
	struct sim_phys *p;

	if (host_located)
		dev = 0;
	counted = counted && !host_located;
	if (counted && size > sim_cfg.capacity - dev_used[dev])
		return CUDA_ERROR_OUT_OF_MEMORY;
	p = calloc(1, sizeof(*p));
	if (p == NULL)
		return CUDA_ERROR_OUT_OF_MEMORY;
	p->magic = SIM_MAGIC_PHYS;
	p->id = ++next_id;
	p->size = size;
	p->host_located = host_located;
	p->dev = dev;
	p->numa = -1;
	p->memfd = -1;
	p->uncounted = !counted && !host_located;
	if (!sim_cfg.model_only) {
		p->bytes = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (p->bytes == MAP_FAILED) {
			free(p);
			return CUDA_ERROR_OUT_OF_MEMORY;
		}
	}
	if (counted) {
		dev_used[dev] += size;
		used_bytes += size;
		if (used_bytes > peak_bytes)
			peak_bytes = used_bytes;
	}
	*out = p;
	return CUDA_SUCCESS;
}

CUresult sim_phys_create(uint64_t size, int host_located, int dev, struct sim_phys **out)
{
	return phys_make(size, host_located, dev, 1, out);
}

/* Frees a physical allocation once neither a handle nor a mapping refers to it. */
void sim_phys_put(struct sim_phys *p)
{
	if (p->handle_refs > 0 || p->map_refs > 0)
		return;
	if (p->bytes != NULL)
		munmap(p->bytes, p->size);
	if (p->memfd >= 0)
		close(p->memfd);
	if (!p->host_located && !p->imported && !p->uncounted) {
		dev_used[p->dev] -= p->size;
		used_bytes -= p->size;
	}
	p->magic = SIM_MAGIC_DEAD;
	sim_retire(p);
}

static int protection(int access);

int sim_phys_share(struct sim_phys *p)
{
	char *nb;
	int fd;

	if (p->memfd >= 0)
		return 0;
	if (p->bytes == NULL)
		return -1;
	fd = memfd_create("simcuda-shared", MFD_CLOEXEC);
	if (fd < 0)
		return -1;
	if (ftruncate(fd, (off_t)p->size) != 0 ||
	    (nb = mmap(NULL, p->size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)) == MAP_FAILED) {
		close(fd);
		return -1;
	}
	memcpy(nb, p->bytes, p->size);
	/* Every device address that shows these pages shows the memfd's from now on. */
	for (size_t i = 0; i < maps.n; i++) {
		struct sim_map *m = vec_at(&maps, i);
		if (m->phys != p)
			continue;
		if (mremap(nb + m->off, 0, m->size, MREMAP_MAYMOVE | MREMAP_FIXED, (void *)(uintptr_t)m->va) ==
		    MAP_FAILED)
			abort(); /* the window is ours: only a kernel out of memory gets here */
		mprotect((void *)(uintptr_t)m->va, m->size, protection(m->access));
	}
	munmap(p->bytes, p->size);
	p->bytes = nb;
	p->memfd = fd;
	return 0;
}

/* ---- the mapping table ---- */

struct sim_map *sim_map_find(uint64_t addr)
{
	ssize_t i = vec_find(&maps, addr);
	return i < 0 ? NULL : vec_at(&maps, (size_t)i);
}

static int protection(int access)
{
	return access == 3 ? PROT_READ | PROT_WRITE : access == 1 ? PROT_READ : PROT_NONE;
}

CUresult sim_map_insert(uint64_t va, uint64_t size, struct sim_phys *p, uint64_t off)
{
	struct sim_map m = {.va = va, .size = size, .phys = p, .off = off, .access = 0};
	size_t i = vec_upper(&maps, va);

	/* The new range must not overlap its neighbours. */
	if (i > 0) {
		struct sim_map *prev = vec_at(&maps, i - 1);
		if (prev->va + prev->size > va)
			return CUDA_ERROR_INVALID_VALUE;
	}
	if (i < maps.n && ((struct sim_map *)vec_at(&maps, i))->va < va + size)
		return CUDA_ERROR_INVALID_VALUE;
	if (p->bytes != NULL) {
		void *at = mremap(p->bytes + off, 0, size, MREMAP_MAYMOVE | MREMAP_FIXED, (void *)(uintptr_t)va);
		if (at == MAP_FAILED)
			return CUDA_ERROR_OUT_OF_MEMORY;
		mprotect(at, size, PROT_NONE);
	}
	if (vec_insert(&maps, &m) != 0)
		return CUDA_ERROR_OUT_OF_MEMORY;
	p->map_refs++;
	return CUDA_SUCCESS;
}

/* Unmaps [va, va+size), which must consist of whole mappings. */
CUresult sim_map_remove(uint64_t va, uint64_t size)
{
	ssize_t first = vec_find(&maps, va);
	size_t i, n = 0;
	uint64_t at = va;

	if (first < 0 || ((struct sim_map *)vec_at(&maps, (size_t)first))->va != va)
		return CUDA_ERROR_INVALID_VALUE;
	for (i = (size_t)first; i < maps.n && at < va + size; i++, n++) {
		struct sim_map *m = vec_at(&maps, i);
		if (m->va != at)
			return CUDA_ERROR_INVALID_VALUE;
		at += m->size;
	}
	if (at != va + size)
		return CUDA_ERROR_INVALID_VALUE;
	if (mmap((void *)(uintptr_t)va, size, PROT_NONE, MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0) ==
	    MAP_FAILED)
		return CUDA_ERROR_UNMAP_FAILED;
	while (n-- > 0) {
		struct sim_map *m = vec_at(&maps, (size_t)first);
		struct sim_phys *p = m->phys;
		vec_remove(&maps, (size_t)first);
		p->map_refs--;
		sim_phys_put(p);
	}
	return CUDA_SUCCESS;
}

/* Checks that [va, va+size) is all mapped; returns the index of its first mapping, or -1. */
static ssize_t maps_span(uint64_t va, uint64_t size)
{
	ssize_t first = vec_find(&maps, va);
	uint64_t at = va;

	if (first < 0)
		return -1;
	for (size_t i = (size_t)first; at < va + size; i++) {
		struct sim_map *m;
		if (i >= maps.n)
			return -1;
		m = vec_at(&maps, i);
		if (m->va > at)
			return -1;
		at = m->va + m->size;
	}
	return first;
}

/* Gives each mapping over [va, va+size) the levels (level[d] < 0 keeps device d's), or every device
 * the one level `all` when level is NULL; the host pages show the most any device has. */
static CUresult set_levels(uint64_t va, uint64_t size, const int *level, int all)
{
	ssize_t first = maps_span(va, size);
	uint64_t at = va;

	/* Checked whole first, so that a failure changes nothing. */
	if (first < 0)
		return CUDA_ERROR_INVALID_VALUE;
	for (size_t i = (size_t)first; at < va + size; i++) {
		struct sim_map *m = vec_at(&maps, i);
		int most = 0;
		for (int d = 0; d < SIM_MAX_DEVICES; d++) {
			if (level == NULL)
				m->dev_access[d] = (unsigned char)all;
			else if (level[d] >= 0)
				m->dev_access[d] = (unsigned char)level[d];
			most |= m->dev_access[d];
		}
		m->access = most;
		if (!sim_cfg.model_only)
			mprotect((void *)(uintptr_t)m->va, m->size, protection(most));
		at = m->va + m->size;
	}
	return CUDA_SUCCESS;
}

CUresult sim_map_set_access(uint64_t va, uint64_t size, int access)
{
	return set_levels(va, size, NULL, access);
}

CUresult sim_map_set_dev_access(uint64_t va, uint64_t size, const int level[SIM_MAX_DEVICES])
{
	return set_levels(va, size, level, 0);
}

/* How a check reaches device memory. */
enum reach {
	REACH_ANY,    /* no context: the most any device has */
	REACH_KERNEL, /* a kernel in ctx: its device's level, and peer access to another device's memory */
	REACH_COPY,   /* a copy by ctx's device: its device's level; the link needs no peer access */
};

/* The access a mapping gives a check: a kernel running in ctx reaches memory of its own device,
 * host-located or another process's memory, VMM memory (cuMemSetAccess decides, device by device),
 * or a device it has peer access to. */
static int map_level(const struct sim_map *m, const struct sim_ctx *ctx, enum reach how)
{
	const struct sim_phys *p = m->phys;

	if (how == REACH_ANY)
		return m->access;
	if (how == REACH_COPY || p->host_located || p->imported || p->from_create || p->dev == ctx->dev)
		return m->dev_access[ctx->dev];
	return (__atomic_load_n(&ctx->peers, __ATOMIC_ACQUIRE) >> p->dev) & 1 ? m->dev_access[ctx->dev] : 0;
}

/* Walks the mappings over [addr, addr+bytes) of the device window: whether all of it is mapped with
 * the access, as the check reaches it; *dev gets the one device whose memory backs all of it, or
 * -1. Callers hold sim_mem_lock. */
static int maps_cover(uint64_t addr, uint64_t bytes, int access, const struct sim_ctx *ctx, enum reach how,
		      int *dev)
{
	uint64_t at = addr;
	ssize_t i = vec_find(&maps, addr);

	*dev = -2;
	while (at < addr + bytes) {
		struct sim_map *m;
		int d;
		if (i < 0 || (size_t)i >= maps.n)
			return 0;
		m = vec_at(&maps, (size_t)i);
		if (m->va > at || (map_level(m, ctx, how) & access) != access)
			return 0;
		d = m->phys->host_located || m->phys->imported ? -1 : m->phys->dev;
		*dev = *dev == -2 || *dev == d ? d : -1;
		at = m->va + m->size;
		i++;
	}
	return 1;
}

static int check_in(const struct sim_ctx *ctx, enum reach how, uint64_t addr, uint64_t bytes, int access,
		    int allow_host)
{
	int ok = 1, dev;

	if (bytes == 0)
		return 0;
	if (addr + bytes < addr)
		return -1;
	if (ctx == NULL)
		how = REACH_ANY;
	pthread_mutex_lock(&sim_mem_lock);
	if (sim_is_device_addr(addr)) {
		ok = maps_cover(addr, bytes, access, ctx, how, &dev);
	} else if (allow_host) {
		ssize_t i = vec_find(&pins, addr);
		ok = i >= 0;
		if (ok) {
			struct pinned *p = vec_at(&pins, (size_t)i);
			ok = addr + bytes <= p->addr + p->size;
		}
	} else {
		ok = 0;
	}
	pthread_mutex_unlock(&sim_mem_lock);
	return ok ? 0 : -1;
}

int sim_mem_check(uint64_t addr, uint64_t bytes, int access, int allow_host)
{
	return check_in(NULL, REACH_ANY, addr, bytes, access, allow_host);
}

int sim_mem_check_in(const struct sim_ctx *ctx, uint64_t addr, uint64_t bytes, int access)
{
	return check_in(ctx, REACH_KERNEL, addr, bytes, access, 1);
}

int sim_mem_check_copy(const struct sim_ctx *ctx, uint64_t addr, uint64_t bytes, int access)
{
	return check_in(ctx, REACH_COPY, addr, bytes, access, 1);
}

uint64_t sim_mem_host_bytes(uint64_t addr, uint64_t bytes)
{
	uint64_t host = 0, end = addr + bytes;
	size_t first;

	if (bytes == 0 || end < addr)
		return 0;
	if (!sim_is_device_addr(addr))
		return bytes;
	pthread_mutex_lock(&sim_mem_lock);
	first = vec_upper(&maps, addr);
	for (size_t i = first > 0 ? first - 1 : 0; i < maps.n; i++) {
		const struct sim_map *m = vec_at(&maps, i);
		uint64_t lo = SIM_MAX(m->va, addr), hi = SIM_MIN(m->va + m->size, end);
		if (m->va >= end)
			break;
		if (hi > lo && m->phys->host_located)
			host += hi - lo;
	}
	pthread_mutex_unlock(&sim_mem_lock);
	return host;
}

int sim_mem_device(uint64_t addr, uint64_t bytes)
{
	int dev = -1;

	if (bytes == 0 || addr + bytes < addr || !sim_is_device_addr(addr))
		return -1;
	pthread_mutex_lock(&sim_mem_lock);
	if (!maps_cover(addr, bytes, 0, NULL, REACH_ANY, &dev))
		dev = -1;
	pthread_mutex_unlock(&sim_mem_lock);
	return dev < 0 ? -1 : dev;
}

/* ---- cuMemAlloc and friends ---- */

/* A cuMemAlloc-style allocation charged to device dev. Callers hold sim_mem_lock. */
static CUresult alloc_new_on(uint64_t size, int dev, uint64_t *out)
{
	struct alloc a;
	struct resv rv;
	uint64_t vsize = (size + 4095) & ~4095ull;
	uint64_t align = vsize >= SIM_GRANULARITY ? SIM_GRANULARITY : 4096;
	struct sim_ctx *ctx = sim_ctx_current();
	CUresult r;

	if (size == 0)
		return CUDA_ERROR_INVALID_VALUE;
	r = sim_phys_create(vsize, 0, dev, &a.phys);
	if (r != CUDA_SUCCESS)
		return r;
	if (sim_va_alloc(vsize, align, 0, &a.va) != 0) {
		sim_phys_put(a.phys);
		return CUDA_ERROR_OUT_OF_MEMORY;
	}
	a.size = size;
	a.vsize = vsize;
	a.id = ++next_id;
	a.ctx = ctx;
	a.pool = 0;
	r = sim_map_insert(a.va, vsize, a.phys, 0);
	if (r == CUDA_SUCCESS)
		r = sim_map_set_access(a.va, vsize, 3);
	rv = (struct resv){.va = a.va, .size = vsize, .internal = 1, .id = a.id};
	if (r != CUDA_SUCCESS || vec_insert(&allocs, &a) != 0 || vec_insert(&resvs, &rv) != 0) {
		/* Only the map insert or a table insert can fail here; undo what was done. */
		if (sim_map_find(a.va) != NULL)
			sim_map_remove(a.va, vsize);
		else
			sim_phys_put(a.phys);
		sim_va_free(a.va, vsize);
		return r != CUDA_SUCCESS ? r : CUDA_ERROR_OUT_OF_MEMORY;
	}
	*out = a.va;
	return CUDA_SUCCESS;
}

/* Charged to the current context's device. */
CUresult sim_alloc_new(uint64_t size, uint64_t *out)
{
	struct sim_ctx *ctx = sim_ctx_current();

	return alloc_new_on(size, ctx != NULL ? ctx->dev : 0, out);
}

int sim_alloc_lookup(uint64_t addr, uint64_t *vsize, struct sim_phys **phys)
{
	ssize_t i = vec_find(&allocs, addr);
	const struct alloc *a;

	if (i < 0)
		return -1;
	a = vec_at(&allocs, (size_t)i);
	if (a->va != addr)
		return -1;
	*vsize = a->vsize;
	*phys = a->phys;
	return 0;
}

static CUresult galloc_free_now(uint64_t va);

CUresult sim_alloc_free(uint64_t dptr)
{
	ssize_t i = vec_find(&allocs, dptr);
	struct alloc a;

	if (i < 0 || ((struct alloc *)vec_at(&allocs, (size_t)i))->va != dptr)
		return galloc_free_now(dptr);
	a = *(struct alloc *)vec_at(&allocs, (size_t)i);
	vec_remove(&allocs, (size_t)i);
	if (a.pool)
		pool_account(&a, -1);
	i = vec_find(&resvs, a.va);
	if (i >= 0)
		vec_remove(&resvs, (size_t)i);
	sim_map_remove(a.va, a.vsize);
	sim_va_free(a.va, a.vsize);
	return CUDA_SUCCESS;
}

SIM_EXPORT CUresult cuMemAlloc_v2(CUdeviceptr *dptr, size_t bytes)
{
	CUresult r = sim_enter_ctx(NULL);
	uint64_t va;

	if (r != CUDA_SUCCESS)
		return r;
	if (dptr == NULL || bytes == 0)
		return CUDA_ERROR_INVALID_VALUE;
	r = sim_capture_unsafe_call(sim_thread_capture_mode());
	if (r != CUDA_SUCCESS)
		return r;
	pthread_mutex_lock(&sim_mem_lock);
	r = sim_alloc_new(bytes, &va);
	pthread_mutex_unlock(&sim_mem_lock);
	if (r == CUDA_SUCCESS)
		*dptr = va;
	return r;
}

SIM_EXPORT CUresult cuMemAllocPitch_v2(CUdeviceptr *dptr, size_t *pitch, size_t width, size_t height,
				       unsigned int elem)
{
	size_t p;

	if (dptr == NULL || pitch == NULL || width == 0 || height == 0 || (elem != 4 && elem != 8 && elem != 16))
		return CUDA_ERROR_INVALID_VALUE;
	p = (width + 511) & ~(size_t)511;
	if (height > SIZE_MAX / p)
		return CUDA_ERROR_INVALID_VALUE;
	*pitch = p;
	return cuMemAlloc_v2(dptr, p * height);
}

/* cuMemFree waits for the device first, as the real driver does, so the pages are idle when they go. */
SIM_EXPORT CUresult cuMemFree_v2(CUdeviceptr dptr)
{
	CUresult r = sim_enter_ctx(NULL);

	if (r != CUDA_SUCCESS)
		return r;
	if (dptr == 0)
		return CUDA_SUCCESS;
	r = sim_capture_unsafe_call(sim_thread_capture_mode());
	if (r != CUDA_SUCCESS)
		return r;
	sim_streams_idle(NULL);
	pthread_mutex_lock(&sim_mem_lock);
	r = sim_alloc_free(dptr);
	pthread_mutex_unlock(&sim_mem_lock);
	return r;
}

SIM_EXPORT CUresult cuMemGetInfo_v2(size_t *free_bytes, size_t *total)
{
	struct sim_ctx *ctx;
	CUresult r = sim_enter_ctx(&ctx);

	if (r != CUDA_SUCCESS)
		return r;
	if (free_bytes == NULL || total == NULL)
		return CUDA_ERROR_INVALID_VALUE;
	pthread_mutex_lock(&sim_mem_lock);
	*free_bytes = sim_cfg.capacity - dev_used[ctx->dev];
	*total = sim_cfg.capacity;
	pthread_mutex_unlock(&sim_mem_lock);
	return CUDA_SUCCESS;
}

SIM_EXPORT CUresult cuMemGetAddressRange_v2(CUdeviceptr *base, size_t *size, CUdeviceptr dptr)
{
	CUresult r = sim_enter_ctx(NULL);
	ssize_t i;

	if (r != CUDA_SUCCESS)
		return r;
	pthread_mutex_lock(&sim_mem_lock);
	i = vec_find(&allocs, dptr);
	if (i >= 0 && dptr - ((struct alloc *)vec_at(&allocs, (size_t)i))->va <
			      ((struct alloc *)vec_at(&allocs, (size_t)i))->size) {
		struct alloc *a = vec_at(&allocs, (size_t)i);
		if (base != NULL)
			*base = a->va;
		if (size != NULL)
			*size = a->size;
	} else {
		struct sim_map *m = sim_map_find(dptr);
		if (m == NULL)
			r = CUDA_ERROR_NOT_FOUND;
		else {
			if (base != NULL)
				*base = m->va;
			if (size != NULL)
				*size = m->size;
		}
	}
	pthread_mutex_unlock(&sim_mem_lock);
	return r;
}

SIM_EXPORT void simcuda_mem_usage(uint64_t *used, uint64_t *peak)
{
	pthread_mutex_lock(&sim_mem_lock);
	if (used != NULL)
		*used = used_bytes;
	if (peak != NULL)
		*peak = peak_bytes;
	pthread_mutex_unlock(&sim_mem_lock);
}

/* ---- reservations (used by vmm.c) ---- */

int sim_resv_add(uint64_t va, uint64_t size)
{
	struct resv rv = {.va = va, .size = size, .internal = 0, .id = ++next_id};
	return vec_insert(&resvs, &rv);
}

/* Whether [va, va+size) lies inside one reservation the app made. */
int sim_resv_covers(uint64_t va, uint64_t size)
{
	ssize_t i = vec_find(&resvs, va);
	struct resv *rv;

	if (i < 0)
		return 0;
	rv = vec_at(&resvs, (size_t)i);
	return !rv->internal && va + size <= rv->va + rv->size;
}

CUresult sim_resv_remove(uint64_t va, uint64_t size)
{
	ssize_t i = vec_find(&resvs, va);
	struct resv *rv;
	ssize_t m;

	if (i < 0)
		return CUDA_ERROR_INVALID_VALUE;
	rv = vec_at(&resvs, (size_t)i);
	if (rv->internal || rv->va != va || rv->size != size)
		return CUDA_ERROR_INVALID_VALUE;
	/* Nothing may still be mapped inside it. */
	m = (ssize_t)vec_upper(&maps, va + size - 1) - 1;
	if (m >= 0) {
		struct sim_map *last = vec_at(&maps, (size_t)m);
		if (last->va + last->size > va)
			return CUDA_ERROR_INVALID_VALUE;
	}
	vec_remove(&resvs, (size_t)i);
	sim_va_free(va, size);
	return CUDA_SUCCESS;
}

/* ---- pinned host memory ---- */

static CUresult pin(uint64_t addr, uint64_t size, unsigned flags, int owned)
{
	struct pinned p = {.addr = addr, .size = size, .flags = flags, .owned = owned, .id = ++next_id,
			   .ctx = sim_ctx_current()};
	size_t i = vec_upper(&pins, addr);

	if (i > 0) {
		struct pinned *prev = vec_at(&pins, i - 1);
		if (prev->addr + prev->size > addr)
			return CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED;
	}
	if (i < pins.n && ((struct pinned *)vec_at(&pins, i))->addr < addr + size)
		return CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED;
	return vec_insert(&pins, &p) == 0 ? CUDA_SUCCESS : CUDA_ERROR_OUT_OF_MEMORY;
}

SIM_EXPORT CUresult cuMemHostAlloc(void **pp, size_t bytes, unsigned int flags)
{
	CUresult r = sim_enter_ctx(NULL);
	void *p;

	if (r != CUDA_SUCCESS)
		return r;
	if (pp == NULL || bytes == 0 ||
	    (flags & ~(unsigned)(CU_MEMHOSTALLOC_PORTABLE | CU_MEMHOSTALLOC_DEVICEMAP | CU_MEMHOSTALLOC_WRITECOMBINED)))
		return CUDA_ERROR_INVALID_VALUE;
	if (sim_inject_host_alloc_failure())
		return CUDA_ERROR_OUT_OF_MEMORY;
	p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return CUDA_ERROR_OUT_OF_MEMORY;
	pthread_mutex_lock(&sim_mem_lock);
	r = pin((uint64_t)(uintptr_t)p, bytes, flags, 1);
	pthread_mutex_unlock(&sim_mem_lock);
	if (r != CUDA_SUCCESS) {
		munmap(p, bytes);
		return r;
	}
	*pp = p;
	return CUDA_SUCCESS;
}

SIM_EXPORT CUresult cuMemAllocHost_v2(void **pp, size_t bytes)
{
	return cuMemHostAlloc(pp, bytes, 0);
}

static CUresult unpin(void *p, int owned)
{
	CUresult r = sim_enter_ctx(NULL);
	ssize_t i;
	struct pinned pn;

	if (r != CUDA_SUCCESS)
		return r;
	pthread_mutex_lock(&sim_mem_lock);
	i = vec_find(&pins, (uint64_t)(uintptr_t)p);
	if (i < 0 || ((struct pinned *)vec_at(&pins, (size_t)i))->addr != (uint64_t)(uintptr_t)p ||
	    ((struct pinned *)vec_at(&pins, (size_t)i))->owned != owned) {
		pthread_mutex_unlock(&sim_mem_lock);
		return owned ? CUDA_ERROR_INVALID_VALUE : CUDA_ERROR_HOST_MEMORY_NOT_REGISTERED;
	}
	pn = *(struct pinned *)vec_at(&pins, (size_t)i);
	vec_remove(&pins, (size_t)i);
	pthread_mutex_unlock(&sim_mem_lock);
	if (owned) {
		/* Freeing pinned memory waits for the device, as the real driver does. */
		sim_streams_idle(NULL);
		munmap(p, pn.size);
	}
	return CUDA_SUCCESS;
}

SIM_EXPORT CUresult cuMemFreeHost(void *p)
{
	return unpin(p, 1);
}

SIM_EXPORT CUresult cuMemHostRegister_v2(void *p, size_t bytes, unsigned int flags)
{
	CUresult r = sim_enter_ctx(NULL);

	if (r != CUDA_SUCCESS)
		return r;
	if (p == NULL || bytes == 0)
		return CUDA_ERROR_INVALID_VALUE;
	if (sim_is_device_addr((uint64_t)(uintptr_t)p))
		return CUDA_ERROR_INVALID_VALUE;
	pthread_mutex_lock(&sim_mem_lock);
	r = pin((uint64_t)(uintptr_t)p, bytes, flags, 0);
	pthread_mutex_unlock(&sim_mem_lock);
	return r;
}

SIM_EXPORT CUresult cuMemHostUnregister(void *p)
{
	return unpin(p, 0);
}

SIM_EXPORT CUresult cuMemHostGetDevicePointer_v2(CUdeviceptr *dptr, void *p, unsigned int flags)
{
	CUresult r = sim_enter_ctx(NULL);
	ssize_t i;

	if (r != CUDA_SUCCESS)
		return r;
	if (dptr == NULL || flags != 0)
		return CUDA_ERROR_INVALID_VALUE;
	pthread_mutex_lock(&sim_mem_lock);
	i = vec_find(&pins, (uint64_t)(uintptr_t)p);
	pthread_mutex_unlock(&sim_mem_lock);
	if (i < 0)
		return CUDA_ERROR_INVALID_VALUE;
	/* Unified addressing: the host address is the device address. */
	*dptr = (CUdeviceptr)(uintptr_t)p;
	return CUDA_SUCCESS;
}

SIM_EXPORT CUresult cuMemHostGetFlags(unsigned int *flags, void *p)
{
	CUresult r = sim_enter_ctx(NULL);
	ssize_t i;

	if (r != CUDA_SUCCESS)
		return r;
	if (flags == NULL)
		return CUDA_ERROR_INVALID_VALUE;
	pthread_mutex_lock(&sim_mem_lock);
	i = vec_find(&pins, (uint64_t)(uintptr_t)p);
	if (i >= 0)
		*flags = ((struct pinned *)vec_at(&pins, (size_t)i))->flags;
	pthread_mutex_unlock(&sim_mem_lock);
	return i < 0 ? CUDA_ERROR_INVALID_VALUE : CUDA_SUCCESS;
}

/* ---- the default memory pool and stream-ordered allocation ---- */

/* Each device's default pool. Its attributes are guarded by sim_mem_lock. The pool hands each free
 * back to the system when it happens (it keeps no blocks), so what it reserves is its live
 * allocations' page-rounded spans. */
struct pool {
	uint32_t magic;
	int dev;
	int reuse[3]; /* CU_MEMPOOL_ATTR_REUSE_FOLLOW_EVENT_DEPENDENCIES and the next two */
	uint64_t threshold;
	uint64_t used, used_high, reserved, reserved_high;
};

#define POOL(d) {.magic = SIM_MAGIC_POOL, .dev = (d), .reuse = {1, 1, 1}}
static struct pool pools[SIM_MAX_DEVICES] = {
	POOL(0), POOL(1), POOL(2), POOL(3), POOL(4), POOL(5), POOL(6), POOL(7),
};

/* Counts a pool allocation made (sign 1) or freed (-1) in its device's pool. Callers hold
 * sim_mem_lock. */
static void pool_account(const struct alloc *a, int sign)
{
	struct pool *pool_attr = &pools[a->phys->dev];

	if (sign > 0) {
		pool_attr->used += a->size;
		pool_attr->reserved += a->vsize;
	} else {
		pool_attr->used -= a->size;
		pool_attr->reserved -= a->vsize;
	}
	if (pool_attr->used > pool_attr->used_high)
		pool_attr->used_high = pool_attr->used;
	if (pool_attr->reserved > pool_attr->reserved_high)
		pool_attr->reserved_high = pool_attr->reserved;
}

/* A device's default pool from its handle, or NULL. Before cuInit any device's is taken, so that
 * the caller's next check answers CUDA_ERROR_NOT_INITIALIZED. */
static struct pool *pool_of(CUmemoryPool h)
{
	struct pool *p = (struct pool *)h;

	if (p < pools || p >= pools + SIM_MAX_DEVICES || (sim_initialized() && p->dev >= sim_cfg.ndevices))
		return NULL;
	return p;
}

/* Checks a pool handle and an attribute's value pointer, as the driver does first. */
static CUresult pool_check(CUmemoryPool h, const void *value, struct pool **out)
{
	CUresult r = sim_enter();

	if (r != CUDA_SUCCESS)
		return r;
	*out = pool_of(h);
	if (*out == NULL || value == NULL)
		return CUDA_ERROR_INVALID_VALUE;
	return CUDA_SUCCESS;
}

/* Where an attribute of a pool is kept: a reuse flag, or a 64-bit figure; NULL if neither. */
static int *pool_flag(struct pool *pool_attr, CUmemPool_attribute attr)
{
	if (attr < CU_MEMPOOL_ATTR_REUSE_FOLLOW_EVENT_DEPENDENCIES || attr > CU_MEMPOOL_ATTR_REUSE_ALLOW_INTERNAL_DEPENDENCIES)
		return NULL;
	return &pool_attr->reuse[attr - CU_MEMPOOL_ATTR_REUSE_FOLLOW_EVENT_DEPENDENCIES];
}

static uint64_t *pool_figure(struct pool *pool_attr, CUmemPool_attribute attr)
{
	switch (attr) {
	case CU_MEMPOOL_ATTR_RELEASE_THRESHOLD: return &pool_attr->threshold;
	case CU_MEMPOOL_ATTR_RESERVED_MEM_CURRENT: return &pool_attr->reserved;
	case CU_MEMPOOL_ATTR_RESERVED_MEM_HIGH: return &pool_attr->reserved_high;
	case CU_MEMPOOL_ATTR_USED_MEM_CURRENT: return &pool_attr->used;
	case CU_MEMPOOL_ATTR_USED_MEM_HIGH: return &pool_attr->used_high;
	default: return NULL;
	}
}

SIM_EXPORT CUresult cuMemPoolGetAttribute(CUmemoryPool pool, CUmemPool_attribute attr, void *value)
{
	struct pool *p;
	CUresult r = pool_check(pool, value, &p);
	int *flag;
	uint64_t *figure;

	if (r != CUDA_SUCCESS)
		return r;
	flag = pool_flag(p, attr);
	figure = pool_figure(p, attr);
	if (flag == NULL && figure == NULL)
		return CUDA_ERROR_INVALID_VALUE;
	pthread_mutex_lock(&sim_mem_lock);
	if (flag != NULL)
		*(int *)value = *flag;
	else
		*(cuuint64_t *)value = *figure;
	pthread_mutex_unlock(&sim_mem_lock);
	return CUDA_SUCCESS;
}

/* The usage figures are read-only, and a high watermark can only be reset (to zero, which it then
 * reads as the current figure until usage grows). */
SIM_EXPORT CUresult cuMemPoolSetAttribute(CUmemoryPool pool, CUmemPool_attribute attr, void *value)
{
	struct pool *p;
	CUresult r = pool_check(pool, value, &p);
	int *flag;

	if (r != CUDA_SUCCESS)
		return r;
	flag = pool_flag(p, attr);
	pthread_mutex_lock(&sim_mem_lock);
	if (flag != NULL)
		*flag = *(int *)value != 0;
	else if (attr == CU_MEMPOOL_ATTR_RELEASE_THRESHOLD)
		p->threshold = *(cuuint64_t *)value;
	else if ((attr == CU_MEMPOOL_ATTR_USED_MEM_HIGH || attr == CU_MEMPOOL_ATTR_RESERVED_MEM_HIGH) &&
		 *(cuuint64_t *)value == 0)
		*pool_figure(p, attr) = attr == CU_MEMPOOL_ATTR_USED_MEM_HIGH ? p->used : p->reserved;
	else
		r = CUDA_ERROR_INVALID_VALUE;
	pthread_mutex_unlock(&sim_mem_lock);
	return r;
}

/* Nothing to trim: the pool keeps no freed blocks. */
SIM_EXPORT CUresult cuMemPoolTrimTo(CUmemoryPool pool, size_t min_keep)
{
	struct pool *p;

	(void)min_keep;
	return pool_check(pool, pool, &p);
}

SIM_EXPORT CUresult cuDeviceGetDefaultMemPool(CUmemoryPool *pool, CUdevice dev)
{
	CUresult r = sim_enter();

	if (r != CUDA_SUCCESS)
		return r;
	if (pool == NULL)
		return CUDA_ERROR_INVALID_VALUE;
	r = sim_dev_check(dev);
	if (r != CUDA_SUCCESS)
		return r;
	*pool = (CUmemoryPool)&pools[dev];
	return CUDA_SUCCESS;
}

SIM_EXPORT CUresult cuDeviceGetMemPool(CUmemoryPool *pool, CUdevice dev)
{
	return cuDeviceGetDefaultMemPool(pool, dev);
}

/* The allocation is made at once, which is one valid stream-ordered schedule: its memory is usable
 * by the stream's later work. It comes from the pool given, else the current device's. */
static CUresult alloc_async(CUdeviceptr *dptr, size_t bytes, CUstream hs, int per_thread, const struct pool *pool)
{
	struct sim_stream *s;
	CUresult r = sim_enter_stream(hs, per_thread, &s);
	uint64_t va;

	if (r != CUDA_SUCCESS)
		return r;
	if (dptr == NULL || bytes == 0)
		return CUDA_ERROR_INVALID_VALUE;
	/* During capture the allocation becomes an alloc node of the graph. */
	if (s->capture != NULL) {
		r = sim_graph_capture_mem(s, bytes, pool != NULL ? pool->dev : sim_ctx_current()->dev, &va);
		if (r == CUDA_SUCCESS)
			*dptr = va;
		return r;
	}
	pthread_mutex_lock(&sim_mem_lock);
	r = alloc_new_on(bytes, pool != NULL ? pool->dev : sim_ctx_current()->dev, &va);
	if (r == CUDA_SUCCESS) {
		struct alloc *a = vec_at(&allocs, (size_t)vec_find(&allocs, va));
		a->pool = 1;
		pool_account(a, 1);
	}
	pthread_mutex_unlock(&sim_mem_lock);
	if (r == CUDA_SUCCESS)
		*dptr = va;
	return r;
}

SIM_EXPORT CUresult cuMemAllocAsync(CUdeviceptr *dptr, size_t bytes, CUstream hs)
{
	return alloc_async(dptr, bytes, hs, 0, NULL);
}

SIM_EXPORT CUresult cuMemAllocAsync_ptsz(CUdeviceptr *dptr, size_t bytes, CUstream hs)
{
	return alloc_async(dptr, bytes, hs, 1, NULL);
}

static CUresult alloc_from_pool(CUdeviceptr *dptr, size_t bytes, CUmemoryPool pool, CUstream hs, int per_thread)
{
	const struct pool *p = pool_of(pool);

	if (p == NULL)
		return CUDA_ERROR_INVALID_VALUE;
	return alloc_async(dptr, bytes, hs, per_thread, p);
}

SIM_EXPORT CUresult cuMemAllocFromPoolAsync(CUdeviceptr *dptr, size_t bytes, CUmemoryPool pool, CUstream hs)
{
	return alloc_from_pool(dptr, bytes, pool, hs, 0);
}

SIM_EXPORT CUresult cuMemAllocFromPoolAsync_ptsz(CUdeviceptr *dptr, size_t bytes, CUmemoryPool pool, CUstream hs)
{
	return alloc_from_pool(dptr, bytes, pool, hs, 1);
}

/* The free happens when the stream reaches it, after all the work queued before it. */
static CUresult free_async(CUdeviceptr dptr, CUstream hs, int per_thread)
{
	struct sim_stream *s;
	struct sim_op *op;
	CUresult r = sim_enter_stream(hs, per_thread, &s);
	int gunmap = 0;
	ssize_t i;

	if (r != CUDA_SUCCESS)
		return r;
	/* During capture the free becomes a free node, of memory an alloc node gave. */
	if (s->capture != NULL) {
		uint64_t va = dptr;
		return sim_graph_capture_mem(s, 0, 0, &va);
	}
	pthread_mutex_lock(&sim_mem_lock);
	i = vec_find(&allocs, dptr);
	if (i < 0 || ((struct alloc *)vec_at(&allocs, (size_t)i))->va != dptr) {
		/* A graph allocation is freed now as the calls order it, its pages when the stream
		 * gets there. */
		r = sim_galloc_state(dptr, 0);
		gunmap = r == CUDA_SUCCESS;
	}
	pthread_mutex_unlock(&sim_mem_lock);
	if (r != CUDA_SUCCESS)
		return r;
	op = sim_op_new(gunmap ? SIM_OP_GUNMAP : SIM_OP_FREE);
	if (op == NULL)
		return CUDA_ERROR_OUT_OF_MEMORY;
	op->u.f.dptr = dptr;
	sim_stream_submit(s, op, SIM_ENGINE_COMPUTE, 0);
	return CUDA_SUCCESS;
}

SIM_EXPORT CUresult cuMemFreeAsync(CUdeviceptr dptr, CUstream hs)
{
	return free_async(dptr, hs, 0);
}

SIM_EXPORT CUresult cuMemFreeAsync_ptsz(CUdeviceptr dptr, CUstream hs)
{
	return free_async(dptr, hs, 1);
}

/* ---- graph allocations ---- */

/* An alloc node's range, reserved when the node is made and kept while a node or an exec names it,
 * it is allocated or its pages are mapped. `live` follows the calls (a launch of its graph
 * allocates it; a free node's launch, cuMemFreeAsync or cuMemFree frees it) and carries the
 * capacity charge; the pages are mapped when the stream reaches the allocation and unmapped when
 * it reaches the free, so a kernel touching the range outside that span faults. Guarded by
 * sim_mem_lock. */
struct galloc {
	uint64_t va, vsize, size;
	int dev, refs, live;
};

static struct vec gallocs = {.esz = sizeof(struct galloc)};

static ssize_t galloc_index(uint64_t va)
{
	ssize_t i = vec_find(&gallocs, va);

	return i >= 0 && ((struct galloc *)vec_at(&gallocs, (size_t)i))->va == va ? i : -1;
}

CUresult sim_galloc_new(uint64_t size, int dev, uint64_t *va)
{
	struct galloc g = {.vsize = (size + 4095) & ~4095ull, .size = size, .dev = dev, .refs = 1};
	CUresult r = CUDA_SUCCESS;

	if (size == 0)
		return CUDA_ERROR_INVALID_VALUE;
	pthread_mutex_lock(&sim_mem_lock);
	if (sim_va_alloc(g.vsize, g.vsize >= SIM_GRANULARITY ? SIM_GRANULARITY : 4096, 0, &g.va) != 0) {
		r = CUDA_ERROR_OUT_OF_MEMORY;
	} else if (vec_insert(&gallocs, &g) != 0) {
		sim_va_free(g.va, g.vsize);
		r = CUDA_ERROR_OUT_OF_MEMORY;
	}
	pthread_mutex_unlock(&sim_mem_lock);
	if (r == CUDA_SUCCESS)
		*va = g.va;
	return r;
}

/* The range goes once nothing names it, it is not allocated and its pages are gone. Callers hold
 * sim_mem_lock. */
static void galloc_settle(ssize_t i)
{
	struct galloc *g;

	if (i < 0)
		return;
	g = vec_at(&gallocs, (size_t)i);
	if (g->refs > 0 || g->live || sim_map_find(g->va) != NULL)
		return;
	sim_va_free(g->va, g->vsize);
	vec_remove(&gallocs, (size_t)i);
}

void sim_galloc_ref(uint64_t va, int delta)
{
	ssize_t i;

	pthread_mutex_lock(&sim_mem_lock);
	if ((i = galloc_index(va)) >= 0) {
		((struct galloc *)vec_at(&gallocs, (size_t)i))->refs += delta;
		galloc_settle(i);
	}
	pthread_mutex_unlock(&sim_mem_lock);
}

int sim_galloc_is(uint64_t va)
{
	ssize_t i;

	pthread_mutex_lock(&sim_mem_lock);
	i = galloc_index(va);
	pthread_mutex_unlock(&sim_mem_lock);
	return i >= 0;
}

CUresult sim_galloc_state(uint64_t va, int alloc)
{
	ssize_t i = galloc_index(va);
	struct galloc *g;

	if (i < 0)
		return CUDA_ERROR_INVALID_VALUE;
	g = vec_at(&gallocs, (size_t)i);
	if (g->live == alloc)
		return CUDA_ERROR_INVALID_VALUE;
	if (alloc && g->vsize > sim_cfg.capacity - dev_used[g->dev])
		return CUDA_ERROR_OUT_OF_MEMORY;
	g->live = alloc;
	if (alloc) {
		dev_used[g->dev] += g->vsize;
		used_bytes += g->vsize;
		if (used_bytes > peak_bytes)
			peak_bytes = used_bytes;
	} else {
		dev_used[g->dev] -= g->vsize;
		used_bytes -= g->vsize;
	}
	return CUDA_SUCCESS;
}

void sim_galloc_map(uint64_t va, int map)
{
	ssize_t i;
	struct galloc *g;
	struct sim_phys *p;

	pthread_mutex_lock(&sim_mem_lock);
	if ((i = galloc_index(va)) >= 0) {
		g = vec_at(&gallocs, (size_t)i);
		if (!map) {
			if (sim_map_find(g->va) != NULL)
				sim_map_remove(g->va, g->vsize);
			galloc_settle(i);
		} else if (sim_map_find(g->va) == NULL && phys_make(g->vsize, 0, g->dev, 0, &p) == CUDA_SUCCESS) {
			if (sim_map_insert(g->va, g->vsize, p, 0) == CUDA_SUCCESS)
				sim_map_set_access(g->va, g->vsize, 3);
			else
				sim_phys_put(p);
		}
	}
	pthread_mutex_unlock(&sim_mem_lock);
}

/* cuMemFree of a graph allocation, the device idle: freed and unmapped at once. Callers hold
 * sim_mem_lock. */
static CUresult galloc_free_now(uint64_t va)
{
	CUresult r = sim_galloc_state(va, 0);
	ssize_t i = galloc_index(va);

	if (r != CUDA_SUCCESS)
		return r;
	if (sim_map_find(va) != NULL)
		sim_map_remove(va, ((struct galloc *)vec_at(&gallocs, (size_t)i))->vsize);
	galloc_settle(i);
	return CUDA_SUCCESS;
}

/* ---- what an address is, for the pointer attributes (pointer.c) ---- */

CUmemoryPool sim_default_pool(int dev)
{
	return (CUmemoryPool)&pools[dev];
}

/* A cuMemAlloc allocation holding addr, into info. Callers hold sim_mem_lock. */
static int describe_alloc(uint64_t addr, struct sim_ptr *info)
{
	ssize_t i = vec_find(&allocs, addr);
	struct alloc *a;

	if (i < 0)
		return 0;
	a = vec_at(&allocs, (size_t)i);
	if (addr - a->va >= a->size)
		return 0;
	info->kind = SIM_PTR_ALLOC;
	info->ctx = a->ctx;
	info->start = a->va;
	info->size = a->size;
	info->id = a->id;
	info->pool = a->pool;
	return 1;
}

/* A reservation the app made with cuMemAddressReserve, or pinned host memory. Callers hold
 * sim_mem_lock. */
static int describe_other(uint64_t addr, struct sim_ptr *info)
{
	ssize_t i = vec_find(&resvs, addr);

	if (i >= 0 && !((struct resv *)vec_at(&resvs, (size_t)i))->internal) {
		struct resv *rv = vec_at(&resvs, (size_t)i);
		info->kind = SIM_PTR_VMM;
		info->ctx = sim_ctx_current();
		info->start = rv->va;
		info->size = rv->size;
		info->id = rv->id;
		return 1;
	}
	i = vec_find(&pins, addr);
	if (i >= 0) {
		struct pinned *p = vec_at(&pins, (size_t)i);
		info->kind = SIM_PTR_HOST;
		info->ctx = p->ctx;
		info->start = info->map_va = p->addr;
		info->size = info->map_size = p->size;
		info->id = info->block_id = p->id;
		info->mapped = 1;
		info->access = 3;
		return 1;
	}
	return 0;
}

int sim_ptr_describe(uint64_t addr, struct sim_ptr *info)
{
	struct sim_map *m;
	int found;

	memset(info, 0, sizeof(*info));
	pthread_mutex_lock(&sim_mem_lock);
	found = describe_alloc(addr, info) || describe_other(addr, info);
	m = found && info->kind != SIM_PTR_HOST ? sim_map_find(addr) : NULL;
	if (m != NULL) {
		info->mapped = 1;
		info->map_va = m->va;
		info->map_size = m->size;
		info->block_id = m->phys->id;
		info->host_located = m->phys->host_located;
		info->dev = m->phys->host_located ? 0 : m->phys->dev;
		info->access = m->access;
	}
	pthread_mutex_unlock(&sim_mem_lock);
	return found;
}
