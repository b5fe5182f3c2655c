/* Driver initialisation, configuration from the environment, device queries and error strings. */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol/units.h"
#include "tests/simcuda/internal.h"

struct sim_config sim_cfg;

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static atomic_int initialized;

static void warn_env(const char *name, const char *value, const char *why)
{
	fprintf(stderr, "simcuda: ignoring %s=%s: %s\n", name, value, why);
}

static void env_size(const char *name, uint64_t *dst)
{
	const char *v = getenv(name);
	uint64_t x;

	if (v == NULL)
		return;
	if (mv_parse_size(v, &x) != 0 || x == 0)
		warn_env(name, v, "not a positive size such as 512MiB or 2GiB");
	else
		*dst = x;
}

static void env_double(const char *name, double *dst, double scale)
{
	const char *v = getenv(name);
	char *end;
	double x;

	if (v == NULL)
		return;
	errno = 0;
	x = strtod(v, &end);
	if (errno != 0 || end == v || *end != '\0' || !(x > 0) || isinf(x))
		warn_env(name, v, "not a positive number");
	else
		*dst = x * scale;
}

static void env_uint(const char *name, uint64_t *dst)
{
	const char *v = getenv(name);
	char *end;
	unsigned long long x;

	if (v == NULL)
		return;
	errno = 0;
	x = strtoull(v, &end, 10);
	if (errno != 0 || end == v || *end != '\0' || v[0] == '-')
		warn_env(name, v, "not a non-negative integer");
	else
		*dst = x;
}

static void env_flag(const char *name, int *dst, int when_set)
{
	const char *v = getenv(name);

	if (v != NULL && *v != '\0' && strcmp(v, "0") != 0)
		*dst = when_set;
}

static void env_fail_copy(void)
{
	const char *v = getenv("SIMCUDA_FAIL_COPY");
	static const char *dirs[] = {"h2d", "d2h", "d2d", "h2h"};
	const char *colon;
	uint64_t n;
	char *end;

	if (v == NULL)
		return;
	colon = strchr(v, ':');
	if (colon == NULL)
		goto bad;
	n = strtoull(colon + 1, &end, 10);
	if (end == colon + 1 || *end != '\0' || n == 0)
		goto bad;
	if ((size_t)(colon - v) == 3 && strncmp(v, "any", 3) == 0) {
		sim_cfg.fail_copy_dir = -1;
		sim_cfg.fail_copy_n = n;
		return;
	}
	for (int i = 0; i < 4; i++) {
		if ((size_t)(colon - v) == 3 && strncmp(v, dirs[i], 3) == 0) {
			sim_cfg.fail_copy_dir = i;
			sim_cfg.fail_copy_n = n;
			return;
		}
	}
bad:
	warn_env("SIMCUDA_FAIL_COPY", v, "expected h2d|d2h|d2d|h2h|any:N with N >= 1");
}

/* SIMCUDA_DEVICES: a count from 1 to SIM_MAX_DEVICES, digits only. */
static void env_devices(void)
{
	const char *v = getenv("SIMCUDA_DEVICES");
	uint64_t n = 0;
	const char *c;

	if (v == NULL)
		return;
	for (c = v; *c >= '0' && *c <= '9' && n <= SIM_MAX_DEVICES; c++)
		n = n * 10 + (uint64_t)(*c - '0');
	if (c == v || *c != '\0' || n < 1 || n > SIM_MAX_DEVICES)
		warn_env("SIMCUDA_DEVICES", v, "not a device count from 1 to 8");
	else
		sim_cfg.ndevices = (int)n;
}

/* SIMCUDA_NUMA_NODES (0 to 64) and SIMCUDA_HOST_NUMA, a comma-separated node per device (-1: none;
 * a shorter list leaves the rest at the default). By default one node, 0, nearest every device, as
 * on a one-socket host; with no nodes every device reports -1. */
static void env_numa(void)
{
	const char *v = getenv("SIMCUDA_NUMA_NODES");
	uint64_t n = 1;
	char *end;

	if (v != NULL) {
		errno = 0;
		n = strtoull(v, &end, 10);
		if (errno != 0 || end == v || *end != '\0' || v[0] == '-' || n > 64) {
			warn_env("SIMCUDA_NUMA_NODES", v, "not a node count from 0 to 64");
			n = 1;
		}
	}
	sim_cfg.numa_nodes = (int)n;
	for (int d = 0; d < SIM_MAX_DEVICES; d++)
		sim_cfg.dev_numa[d] = n > 0 ? 0 : -1;
	v = getenv("SIMCUDA_HOST_NUMA");
	if (v == NULL)
		return;
	for (int d = 0; d < SIM_MAX_DEVICES && *v != '\0'; d++) {
		long x;
		errno = 0;
		x = strtol(v, &end, 10);
		if (errno != 0 || end == v || (*end != ',' && *end != '\0') || x < -1 || x >= (long)n) {
			warn_env("SIMCUDA_HOST_NUMA", v, "not a comma-separated list of nodes below SIMCUDA_NUMA_NODES, or -1");
			for (d = 0; d < SIM_MAX_DEVICES; d++)
				sim_cfg.dev_numa[d] = n > 0 ? 0 : -1;
			return;
		}
		sim_cfg.dev_numa[d] = (int)x;
		v = *end == ',' ? end + 1 : end;
	}
}

/* Defaults model one H100 SXM 80GB: HBM3 at about 3 TB/s, FP32 (non-tensor) at 67 TFLOP/s, and about
 * 55 GB/s each way over PCIe Gen5, the rate nvbandwidth reports on HGX H100. */
static void load_config(void)
{
	sim_cfg.ndevices = 1;
	sim_cfg.capacity = 80ull << 30;
	/* A stated round figure for a copy between two GPUs, below NVLink 4's 450 GB/s each way. */
	sim_cfg.peer_bps = 300e9;
	env_devices();
	sim_cfg.host_vmm = 1;
	sim_cfg.h2d_bps = 55e9;
	sim_cfg.d2h_bps = 55e9;
	sim_cfg.dram_bps = 3.0e12;
	sim_cfg.flops = 67e12;
	sim_cfg.launch_ns = 4000;
	env_size("SIMCUDA_MEM", &sim_cfg.capacity);
	sim_cfg.granularity = SIM_GRANULARITY;
	{
		uint64_t g = 0;
		const char *v = getenv("SIMCUDA_GRANULARITY");
		/* Smaller than the hardware's, so that tests page at small sizes; never larger, so that the
		 * address window's alignment holds. */
		if (v != NULL) {
			if (mv_parse_size(v, &g) != 0 || g < 4096 || g > SIM_GRANULARITY || (g & (g - 1)) != 0)
				warn_env("SIMCUDA_GRANULARITY", v, "not a power of two from 4KiB to 2MiB");
			else
				sim_cfg.granularity = g;
		}
	}
	env_flag("SIMCUDA_MODEL_ONLY", &sim_cfg.model_only, 1);
	env_flag("SIMCUDA_NO_HOST_VMM", &sim_cfg.host_vmm, 0);
	sim_cfg.host_type_vmm = sim_cfg.host_vmm;
	env_flag("SIMCUDA_NO_HOST_TYPE_VMM", &sim_cfg.host_type_vmm, 0);
	env_numa();
	env_double("SIMCUDA_H2D_GBPS", &sim_cfg.h2d_bps, 1e9);
	env_double("SIMCUDA_D2H_GBPS", &sim_cfg.d2h_bps, 1e9);
	env_double("SIMCUDA_DRAM_GBPS", &sim_cfg.dram_bps, 1e9);
	env_double("SIMCUDA_TFLOPS", &sim_cfg.flops, 1e12);
	env_double("SIMCUDA_PEER_GBPS", &sim_cfg.peer_bps, 1e9);
	{
		double us = sim_cfg.launch_ns / 1e3;
		const char *v = getenv("SIMCUDA_LAUNCH_US");
		/* Zero is a valid launch overhead, so it is parsed apart from the positive rates. */
		if (v != NULL) {
			char *end;
			errno = 0;
			us = strtod(v, &end);
			if (errno != 0 || end == v || *end != '\0' || !(us >= 0) || isinf(us))
				warn_env("SIMCUDA_LAUNCH_US", v, "not a non-negative number");
			else
				sim_cfg.launch_ns = (uint64_t)(us * 1e3);
		}
	}
	env_uint("SIMCUDA_FAIL_MEMCREATE", &sim_cfg.fail_create);
	env_fail_copy();
	env_uint("SIMCUDA_DELAY_KERNEL_US", &sim_cfg.delay_us[SIM_ENGINE_COMPUTE]);
	env_uint("SIMCUDA_DELAY_H2D_US", &sim_cfg.delay_us[SIM_ENGINE_H2D]);
	env_uint("SIMCUDA_DELAY_D2H_US", &sim_cfg.delay_us[SIM_ENGINE_D2H]);
}

static void do_init(void)
{
	load_config();
	sim_mem_init();
	atomic_store(&initialized, 1);
}

int sim_initialized(void)
{
	return atomic_load(&initialized);
}

CUresult sim_enter(void)
{
	return sim_initialized() ? CUDA_SUCCESS : CUDA_ERROR_NOT_INITIALIZED;
}

/* ---- fault injection ---- */

static atomic_uint_fast64_t create_calls;
static atomic_uint_fast64_t copy_calls[4];
static atomic_uint_fast64_t copy_calls_any;

/* Faults armed at run time by simcuda_inject, one per kind: calls are counted from the arming on,
 * and calls first .. last of them fail. Guarded by arm_lock, which is taken only while a kind is
 * armed (`armed` says which), so unarmed calls stay lock-free. */
static pthread_mutex_t arm_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_uint armed;
static struct {
	uint64_t calls, first, last;
} arms[SIMCUDA_FAULT_KINDS];

/* Whether this call of the given kind is one an armed fault fails. */
static int armed_failure(int kind)
{
	int fail;

	if ((atomic_load_explicit(&armed, memory_order_acquire) & (1u << kind)) == 0)
		return 0;
	pthread_mutex_lock(&arm_lock);
	arms[kind].calls++;
	fail = arms[kind].calls >= arms[kind].first && arms[kind].calls <= arms[kind].last;
	pthread_mutex_unlock(&arm_lock);
	return fail;
}

SIM_EXPORT int simcuda_inject(int kind, uint64_t skip, uint64_t count)
{
	if (kind < 0 || kind >= SIMCUDA_FAULT_KINDS)
		return -1;
	pthread_mutex_lock(&arm_lock);
	arms[kind].calls = 0;
	arms[kind].first = skip + 1;
	/* count UINT64_MAX (every call from the first on) must not wrap. */
	arms[kind].last = count > UINT64_MAX - skip ? UINT64_MAX : skip + count;
	if (count == 0)
		atomic_fetch_and(&armed, ~(1u << kind));
	else
		atomic_fetch_or(&armed, 1u << kind);
	pthread_mutex_unlock(&arm_lock);
	return 0;
}

int sim_inject_create_failure(int host)
{
	uint64_t n = atomic_fetch_add(&create_calls, 1) + 1;

	if (armed_failure(host ? SIMCUDA_FAULT_HOST_ALLOC : SIMCUDA_FAULT_DEVICE_CREATE))
		return 1;
	return sim_cfg.fail_create != 0 && n == sim_cfg.fail_create;
}

int sim_inject_host_alloc_failure(void)
{
	return armed_failure(SIMCUDA_FAULT_HOST_ALLOC);
}

int sim_inject_copy_failure(enum sim_copy_dir dir)
{
	static const int kinds[] = {SIMCUDA_FAULT_H2D, SIMCUDA_FAULT_D2H, SIMCUDA_FAULT_D2D, SIMCUDA_FAULT_H2H};
	uint64_t n = atomic_fetch_add(&copy_calls[dir], 1) + 1;
	uint64_t any = atomic_fetch_add(&copy_calls_any, 1) + 1;

	if (armed_failure(kinds[dir]))
		return 1;
	if (sim_cfg.fail_copy_n == 0)
		return 0;
	if (sim_cfg.fail_copy_dir < 0)
		return any == sim_cfg.fail_copy_n;
	return sim_cfg.fail_copy_dir == (int)dir && n == sim_cfg.fail_copy_n;
}

/* ---- init, version, devices ---- */

SIM_EXPORT CUresult cuInit(unsigned int flags)
{
	if (flags != 0)
		return CUDA_ERROR_INVALID_VALUE;
	pthread_once(&init_once, do_init);
	return CUDA_SUCCESS;
}

SIM_EXPORT CUresult cuDriverGetVersion(int *version)
{
	if (version == NULL)
		return CUDA_ERROR_INVALID_VALUE;
	*version = CUDA_VERSION;
	return CUDA_SUCCESS;
}

CUresult sim_dev_check(CUdevice dev)
{
	CUresult r = sim_enter();
	if (r != CUDA_SUCCESS)
		return r;
	return dev >= 0 && dev < sim_cfg.ndevices ? CUDA_SUCCESS : CUDA_ERROR_INVALID_DEVICE;
}

SIM_EXPORT CUresult cuDeviceGet(CUdevice *dev, int ordinal)
{
	CUresult r = sim_enter();
	if (r != CUDA_SUCCESS)
		return r;
	if (dev == NULL)
		return CUDA_ERROR_INVALID_VALUE;
	r = sim_dev_check(ordinal);
	if (r != CUDA_SUCCESS)
		return r;
	*dev = ordinal;
	return CUDA_SUCCESS;
}

SIM_EXPORT CUresult cuDeviceGetCount(int *count)
{
	CUresult r = sim_enter();
	if (r != CUDA_SUCCESS)
		return r;
	if (count == NULL)
		return CUDA_ERROR_INVALID_VALUE;
	*count = sim_cfg.ndevices;
	return CUDA_SUCCESS;
}

SIM_EXPORT CUresult cuDeviceGetName(char *name, int len, CUdevice dev)
{
	static const char model[] = "NVIDIA H100 80GB HBM3 (simcuda)";
	CUresult r = sim_dev_check(dev);
	if (r != CUDA_SUCCESS)
		return r;
	if (name == NULL || len <= 0)
		return CUDA_ERROR_INVALID_VALUE;
	snprintf(name, (size_t)len, "%s", model);
	return CUDA_SUCCESS;
}

SIM_EXPORT CUresult cuDeviceTotalMem_v2(size_t *bytes, CUdevice dev)
{
	CUresult r = sim_dev_check(dev);
	if (r != CUDA_SUCCESS)
		return r;
	if (bytes == NULL)
		return CUDA_ERROR_INVALID_VALUE;
	*bytes = sim_cfg.capacity;
	return CUDA_SUCCESS;
}

SIM_EXPORT CUresult cuDeviceGetUuid_v2(CUuuid *uuid, CUdevice dev)
{
	static const char id[16] = "simcuda-device-0";
	CUresult r = sim_dev_check(dev);
	if (r != CUDA_SUCCESS)
		return r;
	if (uuid == NULL)
		return CUDA_ERROR_INVALID_VALUE;
	memcpy(uuid->bytes, id, sizeof(uuid->bytes));
	uuid->bytes[15] = (char)('0' + dev); /* distinct per device, as real UUIDs are */
	return CUDA_SUCCESS;
}

SIM_EXPORT CUresult cuDeviceGetUuid(CUuuid *uuid, CUdevice dev)
{
	return cuDeviceGetUuid_v2(uuid, dev);
}

/* Attribute values of an H100 SXM; those not listed read as 0. */
static int attribute_value(CUdevice_attribute a, CUdevice dev)
{
	switch (a) {
	case CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK: return 1024;
	case CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_X: return 1024;
	case CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_Y: return 1024;
	case CU_DEVICE_ATTRIBUTE_MAX_BLOCK_DIM_Z: return 64;
	case CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_X: return 2147483647;
	case CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_Y: return 65535;
	case CU_DEVICE_ATTRIBUTE_MAX_GRID_DIM_Z: return 65535;
	case CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK: return 49152;
	case CU_DEVICE_ATTRIBUTE_TOTAL_CONSTANT_MEMORY: return 65536;
	case CU_DEVICE_ATTRIBUTE_WARP_SIZE: return 32;
	case CU_DEVICE_ATTRIBUTE_MAX_PITCH: return 2147483647;
	case CU_DEVICE_ATTRIBUTE_MAX_REGISTERS_PER_BLOCK: return 65536;
	case CU_DEVICE_ATTRIBUTE_CLOCK_RATE: return 1980000;
	case CU_DEVICE_ATTRIBUTE_TEXTURE_ALIGNMENT: return 512;
	case CU_DEVICE_ATTRIBUTE_GPU_OVERLAP: return 1;
	case CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT: return 132;
	case CU_DEVICE_ATTRIBUTE_CAN_MAP_HOST_MEMORY: return 1;
	case CU_DEVICE_ATTRIBUTE_CONCURRENT_KERNELS: return 1;
	case CU_DEVICE_ATTRIBUTE_ECC_ENABLED: return 1;
	case CU_DEVICE_ATTRIBUTE_PCI_BUS_ID: return 0x19 + dev;
	case CU_DEVICE_ATTRIBUTE_ASYNC_ENGINE_COUNT: return 2;
	case CU_DEVICE_ATTRIBUTE_UNIFIED_ADDRESSING: return 1;
	case CU_DEVICE_ATTRIBUTE_MEMORY_CLOCK_RATE: return 2619000;
	case CU_DEVICE_ATTRIBUTE_GLOBAL_MEMORY_BUS_WIDTH: return 5120;
	case CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE: return 52428800;
	case CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_MULTIPROCESSOR: return 2048;
	case CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR: return 9;
	case CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR: return 0;
	case CU_DEVICE_ATTRIBUTE_STREAM_PRIORITIES_SUPPORTED: return 1;
	case CU_DEVICE_ATTRIBUTE_GLOBAL_L1_CACHE_SUPPORTED: return 1;
	case CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_MULTIPROCESSOR: return 233472;
	case CU_DEVICE_ATTRIBUTE_MANAGED_MEMORY: return 1;
	case CU_DEVICE_ATTRIBUTE_COOPERATIVE_LAUNCH: return 1;
	case CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN: return 232448;
	case CU_DEVICE_ATTRIBUTE_HOST_REGISTER_SUPPORTED: return 1;
	case CU_DEVICE_ATTRIBUTE_READ_ONLY_HOST_REGISTER_SUPPORTED: return 1;
	case CU_DEVICE_ATTRIBUTE_VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED: return 1;
	case CU_DEVICE_ATTRIBUTE_MEMORY_POOLS_SUPPORTED: return 1;
	case CU_DEVICE_ATTRIBUTE_MEMPOOL_SUPPORTED_HANDLE_TYPES: return 0;
	case CU_DEVICE_ATTRIBUTE_HOST_VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED: return sim_cfg.host_type_vmm;
	case CU_DEVICE_ATTRIBUTE_HOST_NUMA_ID: return sim_cfg.dev_numa[dev];
	case CU_DEVICE_ATTRIBUTE_HOST_NUMA_VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED: return sim_cfg.host_vmm;
	default: return 0;
	}
}

SIM_EXPORT CUresult cuDeviceGetAttribute(int *value, CUdevice_attribute attrib, CUdevice dev)
{
	CUresult r = sim_dev_check(dev);
	if (r != CUDA_SUCCESS)
		return r;
	if (value == NULL || (int)attrib <= 0 || attrib >= CU_DEVICE_ATTRIBUTE_MAX)
		return CUDA_ERROR_INVALID_VALUE;
	*value = attribute_value(attrib, dev);
	return CUDA_SUCCESS;
}

/* ---- errors ---- */

static const struct {
	CUresult code;
	const char *name;
	const char *text;
} errors[] = {
#define E(code, text) {code, #code, text}
	E(CUDA_SUCCESS, "no error"),
	E(CUDA_ERROR_INVALID_VALUE, "invalid argument"),
	E(CUDA_ERROR_OUT_OF_MEMORY, "out of memory"),
	E(CUDA_ERROR_NOT_INITIALIZED, "initialization error"),
	E(CUDA_ERROR_DEINITIALIZED, "driver shutting down"),
	E(CUDA_ERROR_PROFILER_DISABLED, "profiler disabled while using external profiling tool"),
	E(CUDA_ERROR_STUB_LIBRARY, "CUDA driver is a stub library"),
	E(CUDA_ERROR_DEVICE_UNAVAILABLE, "CUDA-capable device(s) is/are busy or unavailable"),
	E(CUDA_ERROR_NO_DEVICE, "no CUDA-capable device is detected"),
	E(CUDA_ERROR_INVALID_DEVICE, "invalid device ordinal"),
	E(CUDA_ERROR_DEVICE_NOT_LICENSED, "device doesn't have valid Grid license"),
	E(CUDA_ERROR_INVALID_IMAGE, "device kernel image is invalid"),
	E(CUDA_ERROR_INVALID_CONTEXT, "invalid device context"),
	E(CUDA_ERROR_CONTEXT_ALREADY_CURRENT, "context already current"),
	E(CUDA_ERROR_MAP_FAILED, "mapping of buffer object failed"),
	E(CUDA_ERROR_UNMAP_FAILED, "unmapping of buffer object failed"),
	E(CUDA_ERROR_ARRAY_IS_MAPPED, "array is mapped"),
	E(CUDA_ERROR_ALREADY_MAPPED, "resource already mapped"),
	E(CUDA_ERROR_NO_BINARY_FOR_GPU, "no kernel image is available for execution on the device"),
	E(CUDA_ERROR_ALREADY_ACQUIRED, "resource already acquired"),
	E(CUDA_ERROR_NOT_MAPPED, "resource not mapped"),
	E(CUDA_ERROR_NOT_MAPPED_AS_ARRAY, "resource not mapped as array"),
	E(CUDA_ERROR_NOT_MAPPED_AS_POINTER, "resource not mapped as pointer"),
	E(CUDA_ERROR_ECC_UNCORRECTABLE, "uncorrectable ECC error encountered"),
	E(CUDA_ERROR_UNSUPPORTED_LIMIT, "limit is not supported on this architecture"),
	E(CUDA_ERROR_CONTEXT_ALREADY_IN_USE, "exclusive-thread device already in use by a different thread"),
	E(CUDA_ERROR_PEER_ACCESS_UNSUPPORTED, "peer access is not supported between these two devices"),
	E(CUDA_ERROR_INVALID_PTX, "a PTX JIT compilation failed"),
	E(CUDA_ERROR_INVALID_GRAPHICS_CONTEXT, "invalid OpenGL or DirectX context"),
	E(CUDA_ERROR_NVLINK_UNCORRECTABLE, "uncorrectable NVLink error detected during the execution"),
	E(CUDA_ERROR_JIT_COMPILER_NOT_FOUND, "PTX JIT compiler library not found"),
	E(CUDA_ERROR_UNSUPPORTED_PTX_VERSION, "the provided PTX was compiled with an unsupported toolchain."),
	E(CUDA_ERROR_INVALID_SOURCE, "device kernel image is invalid"),
	E(CUDA_ERROR_FILE_NOT_FOUND, "file not found"),
	E(CUDA_ERROR_SHARED_OBJECT_SYMBOL_NOT_FOUND, "shared object symbol not found"),
	E(CUDA_ERROR_SHARED_OBJECT_INIT_FAILED, "shared object initialization failed"),
	E(CUDA_ERROR_OPERATING_SYSTEM, "OS call failed or operation not supported on this OS"),
	E(CUDA_ERROR_INVALID_HANDLE, "invalid resource handle"),
	E(CUDA_ERROR_ILLEGAL_STATE, "the operation cannot be performed in the present state"),
	E(CUDA_ERROR_NOT_FOUND, "named symbol not found"),
	E(CUDA_ERROR_NOT_READY, "device not ready"),
	E(CUDA_ERROR_ILLEGAL_ADDRESS, "an illegal memory access was encountered"),
	E(CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES, "too many resources requested for launch"),
	E(CUDA_ERROR_LAUNCH_TIMEOUT, "the launch timed out and was terminated"),
	E(CUDA_ERROR_LAUNCH_INCOMPATIBLE_TEXTURING, "launch uses incompatible texturing mode"),
	E(CUDA_ERROR_PEER_ACCESS_ALREADY_ENABLED, "peer access is already enabled"),
	E(CUDA_ERROR_PEER_ACCESS_NOT_ENABLED, "peer access has not been enabled"),
	E(CUDA_ERROR_PRIMARY_CONTEXT_ACTIVE, "cannot set while device is active in this process"),
	E(CUDA_ERROR_CONTEXT_IS_DESTROYED, "context is destroyed"),
	E(CUDA_ERROR_ASSERT, "device-side assert triggered"),
	E(CUDA_ERROR_TOO_MANY_PEERS, "peer mapping resources exhausted"),
	E(CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED, "part or all of the requested memory range is already mapped"),
	E(CUDA_ERROR_HOST_MEMORY_NOT_REGISTERED, "pointer does not correspond to a registered memory region"),
	E(CUDA_ERROR_HARDWARE_STACK_ERROR, "hardware stack error"),
	E(CUDA_ERROR_ILLEGAL_INSTRUCTION, "an illegal instruction was encountered"),
	E(CUDA_ERROR_MISALIGNED_ADDRESS, "misaligned address"),
	E(CUDA_ERROR_INVALID_ADDRESS_SPACE, "operation not supported on global/shared address space"),
	E(CUDA_ERROR_INVALID_PC, "invalid program counter"),
	E(CUDA_ERROR_LAUNCH_FAILED, "unspecified launch failure"),
	E(CUDA_ERROR_COOPERATIVE_LAUNCH_TOO_LARGE, "too many blocks in cooperative launch"),
	E(CUDA_ERROR_NOT_PERMITTED, "operation not permitted"),
	E(CUDA_ERROR_NOT_SUPPORTED, "operation not supported"),
	E(CUDA_ERROR_SYSTEM_NOT_READY, "system not yet initialized"),
	E(CUDA_ERROR_SYSTEM_DRIVER_MISMATCH, "system has unsupported display driver / cuda driver combination"),
	E(CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED, "operation not permitted when stream is capturing"),
	E(CUDA_ERROR_STREAM_CAPTURE_INVALIDATED, "operation failed due to a previous error during capture"),
	E(CUDA_ERROR_STREAM_CAPTURE_MERGE, "operation would result in a merge of separate capture sequences"),
	E(CUDA_ERROR_STREAM_CAPTURE_UNMATCHED, "capture was not ended in the same stream as it began"),
	E(CUDA_ERROR_STREAM_CAPTURE_UNJOINED, "capturing stream has unjoined work"),
	E(CUDA_ERROR_STREAM_CAPTURE_ISOLATION, "dependency created on uncaptured work in another stream"),
	E(CUDA_ERROR_STREAM_CAPTURE_IMPLICIT, "operation would make the legacy stream depend on a capturing blocking stream"),
	E(CUDA_ERROR_CAPTURED_EVENT, "operation not permitted on an event last recorded in a capturing stream"),
	E(CUDA_ERROR_STREAM_CAPTURE_WRONG_THREAD, "attempt to terminate a thread-local capture sequence from another thread"),
	E(CUDA_ERROR_TIMEOUT, "wait operation timed out"),
	E(CUDA_ERROR_GRAPH_EXEC_UPDATE_FAILURE, "the graph update was not performed because it included changes which violated constraints specific to instantiated graph update"),
	E(CUDA_ERROR_UNKNOWN, "unknown error"),
#undef E
};

/* Looks an error up; writes its name or its text, or NULL for a code the driver does not know. */
static CUresult error_lookup(CUresult error, const char **str, int text)
{
	if (str == NULL)
		return CUDA_ERROR_INVALID_VALUE;
	for (size_t i = 0; i < sizeof(errors) / sizeof(errors[0]); i++) {
		if (errors[i].code == error) {
			*str = text ? errors[i].text : errors[i].name;
			return CUDA_SUCCESS;
		}
	}
	*str = NULL;
	return CUDA_ERROR_INVALID_VALUE;
}

SIM_EXPORT CUresult cuGetErrorName(CUresult error, const char **str)
{
	return error_lookup(error, str, 0);
}

SIM_EXPORT CUresult cuGetErrorString(CUresult error, const char **str)
{
	return error_lookup(error, str, 1);
}

static void *retired[SIM_RETIRED_KEPT];
static size_t retired_next;
static pthread_mutex_t retired_lock = PTHREAD_MUTEX_INITIALIZER; /* guards retired, retired_next */

void sim_retire(void *obj)
{
	void *old;

	pthread_mutex_lock(&retired_lock);
	old = retired[retired_next];
	retired[retired_next] = obj;
	retired_next = (retired_next + 1) % SIM_RETIRED_KEPT;
	pthread_mutex_unlock(&retired_lock);
	free(old);
}

SIM_EXPORT int simcuda_model_only(void)
{
	pthread_once(&init_once, do_init);
	return sim_cfg.model_only;
}

int sim_inject_param_info_failure(void)
{
	return armed_failure(SIMCUDA_FAULT_PARAM_INFO);
}
