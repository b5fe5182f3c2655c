/* Interprocess memory and event handles, and the VMM API's POSIX descriptors. Exporting a cuMemAlloc
 * allocation moves its bytes onto a memfd, once; the handle names the exporting process, that
 * descriptor and its inode, and another process opens it through /proc/<pid>/fd and maps the same
 * pages into its own device window. A cuMemCreate allocation that asked for a POSIX descriptor is
 * exported the same way, as a descriptor of its memfd. */
#include "config.h"

#include <fcntl.h>
#include <linux/futex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "tests/simcuda/internal.h"

#define IPC_MAGIC 0x53494d49504331ull /* "SIMIPC1" */

/* What a CUipcMemHandle carries (64 bytes). */
struct ipc_wire {
	uint64_t magic;
	uint64_t pid;
	uint64_t fd;
	uint64_t ino;
	uint64_t size;
};
_Static_assert(sizeof(struct ipc_wire) <= sizeof(CUipcMemHandle), "the handle holds the wire form");

/* One handle opened here: reference counted, as the driver does per context. */
struct ipc_open {
	uint64_t pid, ino;
	uint64_t va, size;
	int refs;
	struct ipc_open *next;
};

/* Guarded by sim_mem_lock. */
static struct ipc_open *opened;

SIM_EXPORT CUresult cuIpcGetMemHandle(CUipcMemHandle *handle, CUdeviceptr dptr)
{
	struct ipc_wire w = {0};
	struct sim_phys *p;
	struct stat st;
	uint64_t vsize;
	CUresult r = sim_enter_ctx(NULL);

	if (r != CUDA_SUCCESS)
		return r;
	if (handle == NULL)
		return CUDA_ERROR_INVALID_VALUE;
	if (sim_cfg.model_only)
		return CUDA_ERROR_NOT_SUPPORTED;
	/* Nothing may touch the pages while they move. */
	sim_streams_idle(NULL);
	pthread_mutex_lock(&sim_mem_lock);
	/* Only the base of a cuMemAlloc allocation: not VMM memory, not an interior pointer. */
	if (sim_alloc_lookup(dptr, &vsize, &p) != 0)
		r = CUDA_ERROR_INVALID_VALUE;
	else if (sim_phys_share(p) != 0 || fstat(p->memfd, &st) != 0)
		r = CUDA_ERROR_MAP_FAILED;
	if (r == CUDA_SUCCESS) {
		w = (struct ipc_wire){IPC_MAGIC, (uint64_t)getpid(), (uint64_t)p->memfd, (uint64_t)st.st_ino, vsize};
		memset(handle, 0, sizeof(*handle));
		memcpy(handle->reserved, &w, sizeof(w));
	}
	pthread_mutex_unlock(&sim_mem_lock);
	return r;
}

/* The exporter's memfd, if the handle still names a live one. */
static int open_exported(const struct ipc_wire *w)
{
	char path[64];
	struct stat st;
	int fd;

	snprintf(path, sizeof(path), "/proc/%llu/fd/%llu", (unsigned long long)w->pid, (unsigned long long)w->fd);
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -1;
	if (fstat(fd, &st) != 0 || (uint64_t)st.st_ino != w->ino || (uint64_t)st.st_size != w->size) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Physical memory over another process's memfd (the descriptor is kept). */
static struct sim_phys *phys_from_fd(int fd, uint64_t size)
{
	struct sim_phys *p = calloc(1, sizeof(*p));

	if (p == NULL)
		return NULL;
	p->magic = SIM_MAGIC_PHYS;
	p->size = size;
	p->imported = 1;
	p->memfd = fd;
	p->bytes = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p->bytes == MAP_FAILED) {
		free(p);
		return NULL;
	}
	return p;
}

/* Maps the exporter's pages into this window. Callers hold sim_mem_lock. */
static CUresult map_imported(int fd, uint64_t size, uint64_t *out)
{
	struct sim_phys *p = phys_from_fd(fd, size);
	uint64_t va;
	CUresult r;

	if (p == NULL || sim_va_alloc(size, 4096, 0, &va) != 0) {
		if (p != NULL)
			sim_phys_put(p);
		else
			close(fd);
		return CUDA_ERROR_MAP_FAILED;
	}
	r = sim_map_insert(va, size, p, 0);
	if (r == CUDA_SUCCESS)
		r = sim_map_set_access(va, size, 3);
	if (r != CUDA_SUCCESS) {
		if (sim_map_find(va) != NULL)
			sim_map_remove(va, size);
		else
			sim_phys_put(p);
		sim_va_free(va, size);
		return CUDA_ERROR_MAP_FAILED;
	}
	*out = va;
	return CUDA_SUCCESS;
}

/* Opens a handle: an unknown or stale one is an invalid handle, one this process exported an
 * invalid context, as on the real driver. */
SIM_EXPORT CUresult cuIpcOpenMemHandle_v2(CUdeviceptr *pdptr, CUipcMemHandle handle, unsigned int flags)
{
	struct ipc_wire w;
	struct ipc_open *o;
	int fd;
	CUresult r = sim_enter_ctx(NULL);

	if (r != CUDA_SUCCESS)
		return r;
	if (pdptr == NULL || flags != CU_IPC_MEM_LAZY_ENABLE_PEER_ACCESS)
		return CUDA_ERROR_INVALID_VALUE;
	memcpy(&w, handle.reserved, sizeof(w));
	if (w.magic != IPC_MAGIC)
		return CUDA_ERROR_INVALID_HANDLE;
	if (w.pid == (uint64_t)getpid())
		return CUDA_ERROR_INVALID_CONTEXT;
	pthread_mutex_lock(&sim_mem_lock);
	for (o = opened; o != NULL; o = o->next)
		if (o->pid == w.pid && o->ino == w.ino)
			break;
	if (o != NULL) {
		o->refs++;
		*pdptr = o->va;
	} else if ((fd = open_exported(&w)) < 0) {
		r = CUDA_ERROR_INVALID_HANDLE;
	} else if ((o = calloc(1, sizeof(*o))) == NULL) {
		close(fd);
		r = CUDA_ERROR_OUT_OF_MEMORY;
	} else if ((r = map_imported(fd, w.size, &o->va)) != CUDA_SUCCESS) {
		free(o);
	} else {
		*o = (struct ipc_open){w.pid, w.ino, o->va, w.size, 1, opened};
		opened = o;
		*pdptr = o->va;
	}
	pthread_mutex_unlock(&sim_mem_lock);
	return r;
}

/* The first version, which cudart of CUDA 10 and older resolves: the same call. */
SIM_EXPORT CUresult cuIpcOpenMemHandle(CUdeviceptr *pdptr, CUipcMemHandle handle, unsigned int flags)
{
	return cuIpcOpenMemHandle_v2(pdptr, handle, flags);
}

SIM_EXPORT CUresult cuIpcCloseMemHandle(CUdeviceptr dptr)
{
	struct ipc_open **pp, *o = NULL;
	CUresult r = sim_enter_ctx(NULL);

	if (r != CUDA_SUCCESS)
		return r;
	/* The device may still be using the pages. */
	sim_streams_idle(NULL);
	pthread_mutex_lock(&sim_mem_lock);
	for (pp = &opened; *pp != NULL; pp = &(*pp)->next)
		if ((*pp)->va == dptr)
			break;
	o = *pp;
	if (o == NULL) {
		r = CUDA_ERROR_INVALID_VALUE;
	} else if (--o->refs == 0) {
		*pp = o->next;
		sim_map_remove(o->va, o->size);
		sim_va_free(o->va, o->size);
		free(o);
	}
	pthread_mutex_unlock(&sim_mem_lock);
	return r;
}

/* ---- shareable handles of the VMM API ---- */

/* A POSIX descriptor for a cuMemCreate allocation that asked for one: a new descriptor of the memfd
 * its bytes move onto. */
SIM_EXPORT CUresult cuMemExportToShareableHandle(void *out, CUmemGenericAllocationHandle h,
						 CUmemAllocationHandleType type, unsigned long long flags)
{
	struct sim_phys *p;
	CUresult r = sim_enter();

	if (r != CUDA_SUCCESS)
		return r;
	if (out == NULL || flags != 0)
		return CUDA_ERROR_INVALID_VALUE;
	if (type != CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR)
		return CUDA_ERROR_NOT_SUPPORTED;
	if (sim_cfg.model_only)
		return CUDA_ERROR_NOT_SUPPORTED;
	sim_streams_idle(NULL);
	pthread_mutex_lock(&sim_mem_lock);
	p = sim_phys_of(h);
	if (p == NULL || !(p->handle_types & CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR))
		r = CUDA_ERROR_INVALID_VALUE;
	else if (sim_phys_share(p) != 0)
		r = CUDA_ERROR_OUT_OF_MEMORY;
	else if ((*(int *)out = fcntl(p->memfd, F_DUPFD_CLOEXEC, 0)) < 0)
		r = CUDA_ERROR_OUT_OF_MEMORY;
	pthread_mutex_unlock(&sim_mem_lock);
	return r;
}

/* An allocation handle for memory another process exported; the caller keeps its descriptor. */
SIM_EXPORT CUresult cuMemImportFromShareableHandle(CUmemGenericAllocationHandle *h, void *os_handle,
						   CUmemAllocationHandleType type)
{
	int fd = (int)(intptr_t)os_handle, own;
	struct sim_phys *p;
	struct stat st;
	CUresult r = sim_enter();

	if (r != CUDA_SUCCESS)
		return r;
	if (h == NULL)
		return CUDA_ERROR_INVALID_VALUE;
	if (type != CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR)
		return CUDA_ERROR_NOT_SUPPORTED;
	if (fstat(fd, &st) != 0 || st.st_size <= 0 || (uint64_t)st.st_size % sim_cfg.granularity != 0)
		return CUDA_ERROR_INVALID_VALUE;
	own = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	if (own < 0)
		return CUDA_ERROR_OUT_OF_MEMORY;
	pthread_mutex_lock(&sim_mem_lock);
	p = phys_from_fd(own, (uint64_t)st.st_size);
	if (p != NULL) {
		p->handle_refs = 1;
		p->from_create = 1;
	}
	pthread_mutex_unlock(&sim_mem_lock);
	if (p == NULL) {
		close(own);
		return CUDA_ERROR_INVALID_VALUE;
	}
	*h = (CUmemGenericAllocationHandle)(uintptr_t)p;
	return CUDA_SUCCESS;
}

/* ---- interprocess events ---- */

#define IPC_EVENT_MAGIC 0x53494d49504345ull /* "SIMIPCE" */
#define IPC_EVENT_PAGE 4096

/* What a CUipcEventHandle carries (64 bytes). */
struct ipc_event_wire {
	uint64_t magic;
	uint64_t pid;
	uint64_t fd;
	uint64_t ino;
};
_Static_assert(sizeof(struct ipc_event_wire) <= sizeof(CUipcEventHandle), "the handle holds the wire form");

/* The shared page: tickets handed out so far, and the newest ticket whose record is done. Tickets
 * wrap; they are compared by their signed difference. */
enum { EV_ISSUED, EV_DONE };

struct sim_ipc_event {
	uint32_t *page;
	int fd;   /* the creator's memfd, which exported handles name; -1 where it was opened */
	int refs; /* atomic */
};

static struct sim_ipc_event *ipc_event_map(int fd)
{
	struct sim_ipc_event *ev = calloc(1, sizeof(*ev));

	if (ev == NULL)
		return NULL;
	ev->page = mmap(NULL, IPC_EVENT_PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (ev->page == MAP_FAILED) {
		free(ev);
		return NULL;
	}
	ev->fd = -1;
	ev->refs = 1;
	return ev;
}

struct sim_ipc_event *sim_ipc_event_new(void)
{
	struct sim_ipc_event *ev = NULL;
	int fd = memfd_create("simcuda-event", MFD_CLOEXEC);

	if (fd < 0)
		return NULL;
	if (ftruncate(fd, IPC_EVENT_PAGE) == 0)
		ev = ipc_event_map(fd);
	if (ev == NULL) {
		close(fd);
		return NULL;
	}
	ev->fd = fd;
	return ev;
}

struct sim_ipc_event *sim_ipc_event_get(struct sim_ipc_event *ev)
{
	__atomic_add_fetch(&ev->refs, 1, __ATOMIC_RELAXED);
	return ev;
}

void sim_ipc_event_put(struct sim_ipc_event *ev)
{
	if (__atomic_sub_fetch(&ev->refs, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	munmap(ev->page, IPC_EVENT_PAGE);
	if (ev->fd >= 0)
		close(ev->fd);
	free(ev);
}

uint32_t sim_ipc_event_record(struct sim_ipc_event *ev)
{
	return __atomic_add_fetch(&ev->page[EV_ISSUED], 1, __ATOMIC_ACQ_REL);
}

uint32_t sim_ipc_event_latest(struct sim_ipc_event *ev)
{
	return __atomic_load_n(&ev->page[EV_ISSUED], __ATOMIC_ACQUIRE);
}

static int ticket_reached(uint32_t done, uint32_t ticket)
{
	return (int32_t)(done - ticket) >= 0;
}

int sim_ipc_event_done(struct sim_ipc_event *ev, uint32_t ticket)
{
	return ticket_reached(__atomic_load_n(&ev->page[EV_DONE], __ATOMIC_ACQUIRE), ticket);
}

/* Records on several streams, or in several processes, finish in any order: the newest ticket done
 * wins, since a wait is always for the latest record. Waiters sleep on the word as a futex shared
 * between processes. */
static void ipc_event_signal(struct sim_ipc_event *ev, uint32_t ticket)
{
	uint32_t *w = &ev->page[EV_DONE];
	uint32_t cur = __atomic_load_n(w, __ATOMIC_ACQUIRE);

	while (!ticket_reached(cur, ticket))
		if (__atomic_compare_exchange_n(w, &cur, ticket, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
			break;
	syscall(SYS_futex, w, FUTEX_WAKE, INT32_MAX, NULL, NULL, 0);
}

void sim_ipc_event_wait(struct sim_ipc_event *ev, uint32_t ticket)
{
	uint32_t *w = &ev->page[EV_DONE];
	uint32_t cur;

	while (!ticket_reached(cur = __atomic_load_n(w, __ATOMIC_ACQUIRE), ticket))
		syscall(SYS_futex, w, FUTEX_WAIT, cur, NULL, NULL, 0);
}

void sim_ipc_event_exec(struct sim_op *op, int faulted)
{
	if (op->u.e.signal)
		ipc_event_signal(op->u.e.ev, op->u.e.ticket);
	else if (!faulted)
		sim_ipc_event_wait(op->u.e.ev, op->u.e.ticket);
	sim_ipc_event_put(op->u.e.ev);
}

/* Only an event created with CU_EVENT_INTERPROCESS and CU_EVENT_DISABLE_TIMING has a handle. */
SIM_EXPORT CUresult cuIpcGetEventHandle(CUipcEventHandle *handle, CUevent event)
{
	struct ipc_event_wire w;
	struct sim_ipc_event *ev;
	struct stat st;
	CUresult r = sim_enter_ctx(NULL);

	if (r != CUDA_SUCCESS)
		return r;
	if (handle == NULL)
		return CUDA_ERROR_INVALID_VALUE;
	r = sim_event_shared(event, &ev);
	if (r != CUDA_SUCCESS)
		return r;
	if (ev == NULL || ev->fd < 0)
		return CUDA_ERROR_INVALID_VALUE;
	if (fstat(ev->fd, &st) != 0)
		return CUDA_ERROR_MAP_FAILED;
	w = (struct ipc_event_wire){IPC_EVENT_MAGIC, (uint64_t)getpid(), (uint64_t)ev->fd, (uint64_t)st.st_ino};
	memset(handle, 0, sizeof(*handle));
	memcpy(handle->reserved, &w, sizeof(w));
	return CUDA_SUCCESS;
}

/* Opens another process's event: an unknown or stale handle is an invalid handle, one this process
 * exported an invalid context, as for memory handles. */
SIM_EXPORT CUresult cuIpcOpenEventHandle(CUevent *phEvent, CUipcEventHandle handle)
{
	struct ipc_event_wire w;
	struct sim_ipc_event *ev;
	struct stat st;
	char path[64];
	int fd;
	CUresult r = sim_enter_ctx(NULL);

	if (r != CUDA_SUCCESS)
		return r;
	if (phEvent == NULL)
		return CUDA_ERROR_INVALID_VALUE;
	memcpy(&w, handle.reserved, sizeof(w));
	if (w.magic != IPC_EVENT_MAGIC)
		return CUDA_ERROR_INVALID_HANDLE;
	if (w.pid == (uint64_t)getpid())
		return CUDA_ERROR_INVALID_CONTEXT;
	snprintf(path, sizeof(path), "/proc/%llu/fd/%llu", (unsigned long long)w.pid, (unsigned long long)w.fd);
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return CUDA_ERROR_INVALID_HANDLE;
	if (fstat(fd, &st) != 0 || (uint64_t)st.st_ino != w.ino || st.st_size != IPC_EVENT_PAGE) {
		close(fd);
		return CUDA_ERROR_INVALID_HANDLE;
	}
	/* The mapping keeps the page; the descriptor is not needed. */
	ev = ipc_event_map(fd);
	close(fd);
	if (ev == NULL)
		return CUDA_ERROR_MAP_FAILED;
	r = sim_event_open(ev, phEvent);
	if (r != CUDA_SUCCESS)
		sim_ipc_event_put(ev);
	return r;
}
