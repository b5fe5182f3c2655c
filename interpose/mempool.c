/* The usage figures of the stream-ordered memory pools whose allocations memvirt serves. */
#include "config.h"

#include "interpose/internal.h"

/* memvirt serves every cuMemAllocAsync and cuMemAllocFromPoolAsync from its own pages, so the
 * driver's pools hold none of them and would report nothing in use. Frameworks read these figures
 * as their memory statistics (PyTorch's cudaMallocAsync backend, for one): memvirt answers them
 * from the allocations it served, per pool. Guarded by mv_lock. */
#define MV_MEMPOOLS 16

static struct {
	CUmemoryPool pool;
	uint64_t used, used_high, reserved, reserved_high;
} pools[MV_MEMPOOLS];

/* The slot of pool, added if new; 0 when the table is full (its figures then go uncounted). */
static int slot_of(CUmemoryPool pool, int add)
{
	for (int i = 0; i < MV_MEMPOOLS; i++) {
		if (pools[i].pool == pool)
			return i + 1;
		if (pools[i].pool == NULL) {
			if (!add)
				return 0;
			pools[i].pool = pool;
			return i + 1;
		}
	}
	return 0;
}

void mv_mempool_charge(struct mv_buf *b, CUmemoryPool pool)
{
	int i = slot_of(pool, 1);
	uint64_t footprint = b->span != 0 ? b->span : b->size;

	b->mempool = i;
	if (i == 0)
		return;
	i--;
	pools[i].used += b->size;
	pools[i].reserved += footprint;
	if (pools[i].used > pools[i].used_high)
		pools[i].used_high = pools[i].used;
	if (pools[i].reserved > pools[i].reserved_high)
		pools[i].reserved_high = pools[i].reserved;
}

void mv_mempool_uncharge(struct mv_buf *b)
{
	int i = b->mempool - 1;

	if (i < 0)
		return;
	pools[i].used -= b->size;
	pools[i].reserved -= b->span != 0 ? b->span : b->size;
	b->mempool = 0;
}

/* The usage attributes come from memvirt's figures, once the driver has checked the call; every
 * other attribute is the driver's. */
MV_EXPORT CUresult cuMemPoolGetAttribute(CUmemoryPool pool, CUmemPool_attribute attr, void *value)
{
	CUresult r;
	int i;

	if (mv_init() != 0)
		return CUDA_ERROR_NOT_INITIALIZED;
	r = mv_real.cuMemPoolGetAttribute(pool, attr, value);
	if (r != CUDA_SUCCESS || attr < CU_MEMPOOL_ATTR_RESERVED_MEM_CURRENT || attr > CU_MEMPOOL_ATTR_USED_MEM_HIGH)
		return r;
	mv_lock();
	i = slot_of(pool, 0) - 1;
	switch (attr) {
	case CU_MEMPOOL_ATTR_RESERVED_MEM_CURRENT: *(cuuint64_t *)value = i < 0 ? 0 : pools[i].reserved; break;
	case CU_MEMPOOL_ATTR_RESERVED_MEM_HIGH: *(cuuint64_t *)value = i < 0 ? 0 : pools[i].reserved_high; break;
	case CU_MEMPOOL_ATTR_USED_MEM_CURRENT: *(cuuint64_t *)value = i < 0 ? 0 : pools[i].used; break;
	default: *(cuuint64_t *)value = i < 0 ? 0 : pools[i].used_high; break;
	}
	mv_unlock();
	return r;
}

/* A reset of a high watermark (the driver refuses any value but zero) resets memvirt's too. */
MV_EXPORT CUresult cuMemPoolSetAttribute(CUmemoryPool pool, CUmemPool_attribute attr, void *value)
{
	CUresult r;
	int i;

	if (mv_init() != 0)
		return CUDA_ERROR_NOT_INITIALIZED;
	r = mv_real.cuMemPoolSetAttribute(pool, attr, value);
	if (r != CUDA_SUCCESS || (attr != CU_MEMPOOL_ATTR_USED_MEM_HIGH && attr != CU_MEMPOOL_ATTR_RESERVED_MEM_HIGH))
		return r;
	mv_lock();
	i = slot_of(pool, 0) - 1;
	if (i >= 0 && attr == CU_MEMPOOL_ATTR_USED_MEM_HIGH)
		pools[i].used_high = pools[i].used;
	else if (i >= 0)
		pools[i].reserved_high = pools[i].reserved;
	mv_unlock();
	return r;
}
