/* What memvirtd learns about a GPU from the driver itself, so that no process's word is needed. */
#include "config.h"

#include <dlfcn.h>
#include <errno.h>
#include <string.h>

#include "daemon/internal.h"
#include "protocol/units.h"

/* The few driver entry points used, by their C types in cuda.h: CUresult is an int enum, CUdevice
 * an int, CUuuid 16 bytes. */
typedef int (*gpu_init_fn)(unsigned flags);
typedef int (*gpu_count_fn)(int *count);
typedef int (*gpu_get_fn)(int *dev, int ordinal);
typedef int (*gpu_uuid_fn)(uint8_t uuid[16], int dev);
typedef int (*gpu_total_fn)(size_t *bytes, int dev);

/* Every GPU the driver listed, read once. */
#define GPU_MAX 64
static struct {
	uint8_t uuid[16];
	uint64_t total;
} gpu_list[GPU_MAX];
static int gpu_count = -1; /* -1: not asked yet; 0: no driver, or no GPU */

/* Loads libcuda.so.1 and lists its devices; on any failure the list stays empty. */
static void gpu_query(void)
{
	gpu_init_fn init;
	gpu_count_fn count;
	gpu_get_fn get;
	gpu_uuid_fn uuid;
	gpu_total_fn total;
	void *h;
	int n = 0, dev, i;
	size_t bytes;
	char size[32];

	gpu_count = 0;
	h = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
	if (h == NULL) {
		mvd_info("no CUDA driver to ask for device memory (%s): it comes from the config's "
			 "device.total, else from the first process on each device", dlerror());
		return;
	}
	init = (gpu_init_fn)dlsym(h, "cuInit");
	count = (gpu_count_fn)dlsym(h, "cuDeviceGetCount");
	get = (gpu_get_fn)dlsym(h, "cuDeviceGet");
	uuid = (gpu_uuid_fn)dlsym(h, "cuDeviceGetUuid_v2");
	if (uuid == NULL)
		uuid = (gpu_uuid_fn)dlsym(h, "cuDeviceGetUuid");
	total = (gpu_total_fn)dlsym(h, "cuDeviceTotalMem_v2");
	if (init == NULL || count == NULL || get == NULL || uuid == NULL || total == NULL ||
	    init(0) != 0 || count(&n) != 0) {
		mvd_info("the CUDA driver cannot list its devices: device memory comes from the "
			 "config's device.total, else from the first process on each device");
		return;
	}
	/* The library stays loaded: the driver does not expect to be unloaded after cuInit. */
	for (i = 0; i < n && gpu_count < GPU_MAX; i++) {
		if (get(&dev, i) != 0 || uuid(gpu_list[gpu_count].uuid, dev) != 0 ||
		    total(&bytes, dev) != 0)
			continue;
		gpu_list[gpu_count].total = bytes;
		mvd_info("the CUDA driver lists device %d with %s", i,
			 mv_format_size(bytes, size, sizeof(size)));
		gpu_count++;
	}
}

int mvd_gpu_index(const uint8_t uuid[16])
{
	int i;

	if (gpu_count < 0)
		gpu_query();
	for (i = 0; i < gpu_count; i++)
		if (memcmp(gpu_list[i].uuid, uuid, 16) == 0)
			return i;
	return -1;
}

int mvd_gpu_total(const uint8_t uuid[16], uint64_t *total)
{
	int i;

	if (gpu_count < 0)
		gpu_query();
	for (i = 0; i < gpu_count; i++) {
		if (memcmp(gpu_list[i].uuid, uuid, 16) == 0) {
			*total = gpu_list[i].total;
			return 0;
		}
	}
	return -ENODEV;
}
