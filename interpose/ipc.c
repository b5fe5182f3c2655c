/* Interprocess memory handles for memvirt's buffers. A memvirt buffer is VMM memory, which the
 * driver's own cuIpcGetMemHandle refuses, so memvirt answers with a handle of its own: the buffer is
 * made resident and pinned for good (it can never be paged while another process may map it), its
 * device pages are exported as a POSIX file descriptor that this process keeps open, and the handle
 * names this process, that descriptor and the buffer's sizes. A process under memvirt opens it by
 * taking a copy of the descriptor (pidfd_getfd, else /proc/<pid>/fd), importing and mapping it; a
 * process without memvirt passes it to the driver, which refuses it as no handle of its own. A slab
 * block shares its pages with other buffers and is refused, so no other process can map the slab
 * chunk. Handles of memory memvirt does not own go to the driver untouched. */
#include "config.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "interpose/internal.h"

#define MV_IPC_MAGIC 0x3143504956564d00ull /* "\0MVVIPC1": no driver handle starts so */
#define MV_IPC_MAX 256

/* What a memvirt CUipcMemHandle carries (64 bytes). */
struct ipc_wire {
	uint64_t magic;
	uint64_t pid;
	uint64_t fd;
	uint64_t size, span;
	uint64_t va; /* in the exporter: tells two exports of one descriptor number apart */
};
_Static_assert(sizeof(struct ipc_wire) <= sizeof(CUipcMemHandle), "the handle holds the wire form");

/* Exported buffers (their descriptors stay open for the process's life) and imported mappings
 * (reference counted per handle, as the driver does). Guarded by ipc_lock, which an export holds
 * while it brings its buffer in; no other lock is taken under it but mv_lock. */
static struct {
	uint64_t va;
	uint32_t id; /* the buffer's number: a later buffer at the same address is another */
	int fd;
} exports[MV_IPC_MAX];
static struct {
	struct ipc_wire w;
	uint64_t va;
	int refs;
} imports[MV_IPC_MAX];
static int nexports, nimports;
static pthread_mutex_t ipc_lock = PTHREAD_MUTEX_INITIALIZER;

/* ---- exporting ---- */

struct export_args {
	struct mv_buf *b;
	int fd;
};

/* Runs while the buffer is resident and held busy: exports its device pages. */
static CUresult do_export(void *arg)
{
	struct export_args *a = arg;
	CUmemGenericAllocationHandle dev;
	int ok;

	mv_lock();
	ok = a->b->state == MV_RESIDENT && a->b->pinned;
	dev = a->b->dev;
	mv_unlock();
	if (!ok)
		return CUDA_ERROR_INVALID_VALUE;
	return mv_real.cuMemExportToShareableHandle(&a->fd, dev, CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR, 0);
}

/* The buffer's descriptor: exported once, then kept. */
static CUresult export_fd(struct mv_buf *b, uint64_t va, uint32_t id, int *fd)
{
	struct export_args a = {b, -1};
	uint64_t word = va;
	CUresult r;

	pthread_mutex_lock(&ipc_lock);
	for (int i = 0; i < nexports; i++) {
		if (exports[i].va == va && exports[i].id == id) {
			*fd = exports[i].fd;
			pthread_mutex_unlock(&ipc_lock);
			return CUDA_SUCCESS;
		}
	}
	r = nexports < MV_IPC_MAX ? mv_submit_pinned(&word, 1, do_export, &a) : CUDA_ERROR_OUT_OF_MEMORY;
	if (r == CUDA_SUCCESS) {
		exports[nexports].va = va;
		exports[nexports].id = id;
		exports[nexports++].fd = a.fd;
		*fd = a.fd;
	}
	pthread_mutex_unlock(&ipc_lock);
	return r;
}

/* Which buffer of memvirt's dptr names, and whether it can be exported. */
static CUresult exportable(CUdeviceptr dptr, struct mv_buf **out, uint32_t *id, struct ipc_wire *w)
{
	struct mv_buf *b;
	CUresult r = CUDA_SUCCESS;

	mv_lock();
	b = mv_registry_find(dptr);
	if (b != NULL) {
		w->size = b->size;
		w->span = b->span;
		*id = b->id;
		if (b->va != dptr)
			r = CUDA_ERROR_INVALID_VALUE;
		else if (b->kind != MV_KIND_LARGE)
			r = CUDA_ERROR_NOT_SUPPORTED;
	}
	mv_unlock();
	*out = b;
	if (r == CUDA_ERROR_INVALID_VALUE)
		mv_log(MV_LOG_WARN, "cuIpcGetMemHandle: %#llx is inside a buffer, not its start",
		       (unsigned long long)dptr);
	else if (r == CUDA_ERROR_NOT_SUPPORTED)
		mv_log(MV_LOG_WARN,
		       "cuIpcGetMemHandle: buffer %#llx (%llu bytes) is a slab block, whose pages other buffers share: "
		       "allocate it at or above MEMVIRT_SLAB_THRESHOLD to export it",
		       (unsigned long long)dptr, (unsigned long long)w->size);
	return r;
}

MV_EXPORT CUresult cuIpcGetMemHandle(CUipcMemHandle *handle, CUdeviceptr dptr)
{
	struct ipc_wire w = {0};
	struct mv_buf *b;
	uint32_t id = 0;
	int fd = -1;
	CUresult r;

	if (mv_init() != 0)
		return CUDA_ERROR_NOT_INITIALIZED;
	if (handle == NULL)
		return mv_real.cuIpcGetMemHandle(handle, dptr);
	r = exportable(dptr, &b, &id, &w);
	if (b == NULL)
		return mv_real.cuIpcGetMemHandle(handle, dptr);
	if (r == CUDA_SUCCESS)
		r = export_fd(b, dptr, id, &fd);
	if (r != CUDA_SUCCESS) {
		mv_log(MV_LOG_WARN, "cuIpcGetMemHandle: buffer %#llx cannot be exported: error %d",
		       (unsigned long long)dptr, (int)r);
		return r;
	}
	w.magic = MV_IPC_MAGIC;
	w.pid = (uint64_t)getpid();
	w.fd = (uint64_t)fd;
	w.va = dptr;
	memset(handle, 0, sizeof(*handle));
	memcpy(handle->reserved, &w, sizeof(w));
	return CUDA_SUCCESS;
}

/* ---- importing ---- */

/* A descriptor of this process for the exporter's: pidfd_getfd copies the descriptor itself; where
 * the kernel or ptrace rules refuse it, /proc/<pid>/fd reopens what it names. */
static int fetch_fd(const struct ipc_wire *w)
{
	char path[64];
	int fd = -1;

#if defined(SYS_pidfd_open) && defined(SYS_pidfd_getfd)
	int pidfd = (int)syscall(SYS_pidfd_open, (pid_t)w->pid, 0);
	if (pidfd >= 0) {
		fd = (int)syscall(SYS_pidfd_getfd, pidfd, (int)w->fd, 0);
		close(pidfd);
	}
	if (fd >= 0)
		return fd;
#endif
	snprintf(path, sizeof(path), "/proc/%llu/fd/%llu", (unsigned long long)w->pid, (unsigned long long)w->fd);
	return open(path, O_RDWR | O_CLOEXEC);
}

/* Maps the exporter's pages at a new range of this process. */
static CUresult map_import(const struct ipc_wire *w, CUdeviceptr *out)
{
	CUmemGenericAllocationHandle h;
	CUmemAllocationProp prop;
	CUmemAccessDesc access[MV_MAX_ACCESS];
	CUdevice dev = 0, owner;
	CUresult r;
	int n, fd = fetch_fd(w);

	if (fd < 0) {
		mv_log(MV_LOG_WARN, "cuIpcOpenMemHandle: process %llu's buffer cannot be reached (is it still running?)",
		       (unsigned long long)w->pid);
		return CUDA_ERROR_INVALID_HANDLE;
	}
	r = mv_real.cuMemImportFromShareableHandle(&h, (void *)(uintptr_t)fd, CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR);
	close(fd);
	if (r != CUDA_SUCCESS)
		return r == CUDA_ERROR_INVALID_VALUE ? CUDA_ERROR_INVALID_HANDLE : r;
	/* The pages' device and every device that reaches it as a peer may use them, as with the
	 * driver's own handles (CU_IPC_MEM_LAZY_ENABLE_PEER_ACCESS); failing that, the current one. */
	mv_real.cuCtxGetDevice(&dev);
	owner = dev;
	if (mv_real.cuMemGetAllocationPropertiesFromHandle(&prop, h) == CUDA_SUCCESS &&
	    prop.location.type == CU_MEM_LOCATION_TYPE_DEVICE)
		owner = prop.location.id;
	r = mv_real.cuMemAddressReserve(out, w->span, mv_dev()->granularity, 0, 0);
	if (r == CUDA_SUCCESS) {
		r = mv_real.cuMemMap(*out, w->span, 0, h, 0);
		if (r != CUDA_SUCCESS)
			mv_real.cuMemAddressFree(*out, w->span);
	}
	/* The mapping holds the pages from here on. */
	mv_real.cuMemRelease(h);
	if (r != CUDA_SUCCESS)
		return r;
	n = mv_access_for(owner, access, MV_MAX_ACCESS);
	r = mv_real.cuMemSetAccess(*out, w->span, access, (size_t)n);
	if (r != CUDA_SUCCESS) {
		n = mv_access_for(dev, access, 1);
		r = mv_real.cuMemSetAccess(*out, w->span, access, (size_t)n);
	}
	if (r != CUDA_SUCCESS) {
		mv_real.cuMemUnmap(*out, w->span);
		mv_real.cuMemAddressFree(*out, w->span);
	}
	return r;
}

static CUresult open_handle(CUdeviceptr *pdptr, CUipcMemHandle handle, unsigned int flags, int v2)
{
	struct ipc_wire w;
	CUresult r = CUDA_SUCCESS;

	if (mv_init() != 0)
		return CUDA_ERROR_NOT_INITIALIZED;
	memcpy(&w, handle.reserved, sizeof(w));
	if (w.magic != MV_IPC_MAGIC)
		return (v2 ? mv_real.cuIpcOpenMemHandle_v2 : mv_real.cuIpcOpenMemHandle)(pdptr, handle, flags);
	/* The device's granularity, for a process whose first call this is, and on a device the
	 * budget leaves out too: the buffer is another process's. */
	r = mv_device_init_any();
	if (r != CUDA_SUCCESS)
		return r;
	if (pdptr == NULL || flags != CU_IPC_MEM_LAZY_ENABLE_PEER_ACCESS || w.span == 0 || w.size > w.span ||
	    w.span % mv_dev()->granularity != 0)
		return CUDA_ERROR_INVALID_VALUE;
	/* As the driver answers: a process cannot open its own handle. */
	if (w.pid == (uint64_t)getpid())
		return CUDA_ERROR_INVALID_CONTEXT;
	pthread_mutex_lock(&ipc_lock);
	for (int i = 0; i < nimports; i++) {
		if (memcmp(&imports[i].w, &w, sizeof(w)) == 0) {
			imports[i].refs++;
			*pdptr = imports[i].va;
			pthread_mutex_unlock(&ipc_lock);
			return CUDA_SUCCESS;
		}
	}
	if (nimports == MV_IPC_MAX)
		r = CUDA_ERROR_TOO_MANY_PEERS;
	if (r == CUDA_SUCCESS)
		r = map_import(&w, pdptr);
	if (r == CUDA_SUCCESS) {
		imports[nimports].w = w;
		imports[nimports].va = *pdptr;
		imports[nimports++].refs = 1;
	}
	pthread_mutex_unlock(&ipc_lock);
	return r;
}

MV_EXPORT CUresult cuIpcOpenMemHandle_v2(CUdeviceptr *pdptr, CUipcMemHandle handle, unsigned int flags)
{
	return open_handle(pdptr, handle, flags, 1);
}

MV_EXPORT CUresult cuIpcOpenMemHandle(CUdeviceptr *pdptr, CUipcMemHandle handle, unsigned int flags)
{
	return open_handle(pdptr, handle, flags, 0);
}

/* Closes an import of memvirt's once its last opener closes it; the driver's own go to it. */
MV_EXPORT CUresult cuIpcCloseMemHandle(CUdeviceptr dptr)
{
	int i;

	if (mv_init() != 0)
		return CUDA_ERROR_NOT_INITIALIZED;
	pthread_mutex_lock(&ipc_lock);
	for (i = 0; i < nimports && imports[i].va != dptr; i++)
		;
	if (i == nimports) {
		pthread_mutex_unlock(&ipc_lock);
		return mv_real.cuIpcCloseMemHandle(dptr);
	}
	if (--imports[i].refs == 0) {
		uint64_t span = imports[i].w.span;
		imports[i] = imports[--nimports];
		pthread_mutex_unlock(&ipc_lock);
		/* The device may still be using it, as with the driver's own handles. */
		mv_real.cuCtxSynchronize();
		mv_real.cuMemUnmap(dptr, span);
		mv_real.cuMemAddressFree(dptr, span);
		return CUDA_SUCCESS;
	}
	pthread_mutex_unlock(&ipc_lock);
	return CUDA_SUCCESS;
}
