/* libmemvirt.so on the calls that hand a buffer to the driver for later use the scanner cannot
 * see: texture and surface objects and generic graph nodes bring the buffer in and pin it for
 * good, so paging pressure afterwards never moves it and its bytes stay exact. On the simulated GPU with the safety net off,
 * where a paged-out buffer's range is unmapped. */
#include "config.h"

#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <unistd.h>

#include "tests/unit/interposetest.h"

#define GRAN64 "SIMCUDA_GRANULARITY=64KiB"
#define THR16 "MEMVIRT_SLAB_THRESHOLD=16KiB"
#define NET_OFF "SIMCUDA_NO_HOST_VMM=1"
#define BUF (64 * ITEST_KIB)      /* one granule with GRAN64 */
#define NF (BUF / sizeof(float)) /* floats in BUF */
#define PITCH 1024               /* bytes per row of the pitched surface */

static CUdeviceptr alloc_filled(uint64_t bytes, float v)
{
	CUdeviceptr p;

	CHK(cuMemAlloc(&p, bytes));
	CHK(simtest_fill(p, v, bytes / sizeof(float), NULL));
	CHK(cuCtxSynchronize());
	return p;
}

/* Allocates eight buffers and uses each three times, so that under a budget of six every other
 * buffer not pinned is paged out; returns the page-outs it caused. */
static uint64_t pressure(CUdeviceptr *f, float *vf)
{
	uint64_t outs = itest_counters().page_outs;

	for (int i = 0; i < 8; i++) {
		if (f[i] == 0) {
			vf[i] = 30.0f + (float)i;
			f[i] = alloc_filled(BUF, vf[i]);
		}
	}
	for (int k = 0; k < 3; k++) {
		for (int i = 0; i < 8; i++)
			CHK(simtest_fill(f[i], vf[i], NF, NULL));
		CHK(cuCtxSynchronize());
	}
	return itest_counters().page_outs - outs;
}

/* A linear float resource over bytes at p, and a pitched one of rows `width` floats wide. */
static CUDA_RESOURCE_DESC linear_desc(CUdeviceptr p, size_t bytes)
{
	CUDA_RESOURCE_DESC d = {0};

	d.resType = CU_RESOURCE_TYPE_LINEAR;
	d.res.linear.devPtr = p;
	d.res.linear.format = CU_AD_FORMAT_FLOAT;
	d.res.linear.numChannels = 1;
	d.res.linear.sizeInBytes = bytes;
	return d;
}

static CUDA_RESOURCE_DESC pitch_desc(CUdeviceptr p, size_t width)
{
	CUDA_RESOURCE_DESC d = {0};

	d.resType = CU_RESOURCE_TYPE_PITCH2D;
	d.res.pitch2D.devPtr = p;
	d.res.pitch2D.format = CU_AD_FORMAT_FLOAT;
	d.res.pitch2D.numChannels = 1;
	d.res.pitch2D.width = width;
	d.res.pitch2D.height = BUF / PITCH;
	d.res.pitch2D.pitchInBytes = PITCH;
	return d;
}

/* A texture object over a linear buffer and a surface object over a pitched one, each created while
 * its buffer is paged out: the create brings it in (the driver checks the range is mapped, and
 * without the hook refuses it), and pressure afterwards pages neither out again: reading them back
 * pages nothing in. */
START_TEST(test_texture_and_surface_pin_buffers)
{
	CUdeviceptr x, y, f[8] = {0};
	float vf[8];
	CUDA_RESOURCE_DESC rx, ry;
	CUDA_TEXTURE_DESC td = {0};
	CUtexObject tex;
	CUsurfObject surf;
	uint64_t ins;

	simtest_start("SIMCUDA_MEM=384KiB", GRAN64, THR16, NET_OFF);
	x = alloc_filled(BUF, 2.0f);
	y = alloc_filled(BUF, 3.0f);
	ck_assert_uint_gt(pressure(f, vf), 2);

	rx = linear_desc(x, BUF);
	CHK(cuTexObjectCreate(&tex, &rx, &td, NULL));
	ry = pitch_desc(y, PITCH / sizeof(float));
	CHK(cuSurfObjectCreate(&surf, &ry));

	ck_assert_uint_gt(pressure(f, vf), 8);
	ins = itest_counters().page_ins;
	simtest_expect_floats(x, NF, 2.0f);
	simtest_expect_floats(y, NF, 3.0f);
	ck_assert_uint_eq(itest_counters().page_ins, ins);
	for (int i = 0; i < 8; i++)
		simtest_expect_floats(f[i], NF, vf[i]);
	CHK(cuTexObjectDestroy(tex));
	CHK(cuSurfObjectDestroy(surf));
	CHK(cuCtxSynchronize());
}
END_TEST

/* A resource the driver refuses is refused as it would be without the library: a range past the
 * buffer's end names unmapped memory. */
START_TEST(test_texture_bad_range_refused)
{
	CUdeviceptr x;
	CUDA_RESOURCE_DESC rx;
	CUDA_TEXTURE_DESC td = {0};
	CUtexObject tex;

	simtest_start("SIMCUDA_MEM=384KiB", GRAN64, THR16, NET_OFF);
	x = alloc_filled(BUF, 1.0f);
	rx = linear_desc(x, 4 * BUF);
	ck_assert_int_eq(cuTexObjectCreate(&tex, &rx, &td, NULL), CUDA_ERROR_INVALID_VALUE);
	simtest_expect_floats(x, NF, 1.0f);
}
END_TEST

/* A texture or surface object the driver refuses holds its buffer no longer than the call: pressure
 * afterwards pages both buffers out, and reading them back pages each in, bytes exact. */
START_TEST(test_refused_objects_leave_buffers_pageable)
{
	CUdeviceptr x, y, f[8] = {0};
	float vf[8];
	CUDA_RESOURCE_DESC rx, ry;
	CUDA_TEXTURE_DESC td = {0};
	CUtexObject tex;
	CUsurfObject surf;
	uint64_t ins;

	simtest_start("SIMCUDA_MEM=384KiB", GRAN64, THR16, NET_OFF);
	x = alloc_filled(BUF, 2.0f);
	y = alloc_filled(BUF, 3.0f);
	/* A range past the buffer's end; rows wider than their pitch. */
	rx = linear_desc(x, 4 * BUF);
	CHK_ERR(cuTexObjectCreate(&tex, &rx, &td, NULL), CUDA_ERROR_INVALID_VALUE);
	ry = pitch_desc(y, 2 * PITCH / sizeof(float));
	CHK_ERR(cuSurfObjectCreate(&surf, &ry), CUDA_ERROR_INVALID_VALUE);

	ck_assert_uint_gt(pressure(f, vf), 8);
	ins = itest_counters().page_ins;
	simtest_expect_floats(x, NF, 2.0f);
	ck_assert_uint_gt(itest_counters().page_ins, ins);
	ins = itest_counters().page_ins;
	simtest_expect_floats(y, NF, 3.0f);
	ck_assert_uint_gt(itest_counters().page_ins, ins);
	for (int i = 0; i < 8; i++)
		simtest_expect_floats(f[i], NF, vf[i]);
	CHK(cuCtxSynchronize());
}
END_TEST

static uint32_t f2u(float f)
{
	uint32_t u;

	memcpy(&u, &f, sizeof(u));
	return u;
}

/* Nodes added through the generic node call name buffers as the typed calls do: a graph launch
 * after pressure brings its buffers in, and so does one after the exec's kernel node is changed
 * through cuGraphExecNodeSetParams to name a buffer that was paged out. Without the hook the
 * launches fault (the paged-out buffers' ranges are unmapped). */
START_TEST(test_generic_graph_nodes_pin_buffers)
{
	CUdeviceptr x, y, z, w, f[8] = {0};
	float vf[8], one = 1.0f;
	uint64_t n = NF;
	void *args[] = {&y, &x, &one, &n}, *args2[] = {&f[0], &x, &one, &n};
	CUstream s;
	CUgraph g;
	CUgraphExec e;
	CUgraphNode k, set, cp;
	CUgraphNodeParams kp = {0}, mp = {0}, cpp = {0};

	simtest_start("SIMCUDA_MEM=384KiB", GRAN64, THR16, NET_OFF);
	CHK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
	x = alloc_filled(BUF, 2.0f);
	y = alloc_filled(BUF, 1.0f);
	z = alloc_filled(BUF, 0.0f);
	w = alloc_filled(BUF, 0.0f);
	CHK(cuGraphCreate(&g, 0));
	kp.type = CU_GRAPH_NODE_TYPE_KERNEL;
	kp.kernel.func = simtest_func("mv_axpy");
	kp.kernel.gridDimX = kp.kernel.gridDimY = kp.kernel.gridDimZ = 1;
	kp.kernel.blockDimX = kp.kernel.blockDimY = kp.kernel.blockDimZ = 1;
	kp.kernel.kernelParams = args;
	CHK(cuGraphAddNode(&k, g, NULL, NULL, 0, &kp));
	mp.type = CU_GRAPH_NODE_TYPE_MEMSET;
	mp.memset.dst = z;
	mp.memset.value = f2u(4.0f);
	mp.memset.elementSize = 4;
	mp.memset.width = NF;
	mp.memset.height = 1;
	mp.memset.ctx = simtest_ctx;
	CHK(cuGraphAddNode(&set, g, &k, NULL, 1, &mp));
	cpp.type = CU_GRAPH_NODE_TYPE_MEMCPY;
	cpp.memcpy.copyCtx = simtest_ctx;
	cpp.memcpy.copyParams.srcMemoryType = cpp.memcpy.copyParams.dstMemoryType = CU_MEMORYTYPE_DEVICE;
	cpp.memcpy.copyParams.srcDevice = z;
	cpp.memcpy.copyParams.dstDevice = w;
	cpp.memcpy.copyParams.WidthInBytes = BUF;
	cpp.memcpy.copyParams.Height = cpp.memcpy.copyParams.Depth = 1;
	CHK(cuGraphAddNode(&cp, g, &set, NULL, 1, &cpp));
	CHK(cuGraphInstantiate(&e, g, 0));

	ck_assert_uint_gt(pressure(f, vf), 8);
	CHK(cuGraphLaunch(e, s));
	CHK(cuStreamSynchronize(s));
	simtest_expect_floats(y, NF, 3.0f);
	simtest_expect_floats(z, NF, 4.0f);
	simtest_expect_floats(w, NF, 4.0f);

	/* f[0] was paged out by the uses after it; naming it in the exec brings it in. */
	kp.kernel.kernelParams = args2;
	CHK(cuGraphExecNodeSetParams(e, k, &kp));
	for (int i = 1; i < 8; i++)
		CHK(simtest_fill(f[i], vf[i], NF, NULL));
	CHK(cuGraphLaunch(e, s));
	CHK(cuStreamSynchronize(s));
	vf[0] += 2.0f;
	simtest_expect_floats(y, NF, 3.0f);
	simtest_expect_floats(x, NF, 2.0f);
	for (int i = 0; i < 8; i++)
		simtest_expect_floats(f[i], NF, vf[i]);
	CHK(cuGraphExecDestroy(e));
	CHK(cuGraphDestroy(g));
	CHK(cuCtxSynchronize());
}
END_TEST

/* Runs the deprecated multi-device launch of mv_axpy(y, x, 1, NF) with stderr caught; returns its
 * result and what it wrote to stderr (malloc'd). */
static CUresult coop_launch(CUdeviceptr y, CUdeviceptr x, char **err)
{
	float one = 1.0f;
	uint64_t n = NF;
	void *args[] = {&y, &x, &one, &n};
	CUDA_LAUNCH_PARAMS lp = {0};
	char path[PATH_MAX];
	int fd, saved;
	CUresult r;

	lp.function = simtest_func("mv_axpy");
	lp.gridDimX = lp.gridDimY = lp.gridDimZ = lp.blockDimX = lp.blockDimY = lp.blockDimZ = 1;
	lp.kernelParams = args;
	itest_tmpfile(path, sizeof(path), "err");
	fd = open(path, O_WRONLY | O_TRUNC);
	ck_assert_int_ge(fd, 0);
	fflush(stderr);
	saved = dup(2);
	ck_assert_int_ge(saved, 0);
	ck_assert_int_eq(dup2(fd, 2), 2);
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
	r = cuLaunchCooperativeKernelMultiDevice(&lp, 1, 0);
#pragma GCC diagnostic pop
	fflush(stderr);
	ck_assert_int_eq(dup2(saved, 2), 2);
	close(saved);
	close(fd);
	*err = itest_slurp(path);
	unlink(path);
	return r;
}

/* A multi-device launch naming a buffer of memvirt's is refused by the library with a log line and
 * never reaches the driver; one naming none goes to the driver (which, simulated, does not model
 * it and says so). */
START_TEST(test_coop_multi_device_refused)
{
	CUdeviceptr x, y;
	char *err;

	simtest_start("SIMCUDA_MEM=384KiB", GRAN64, THR16, NET_OFF);
	x = alloc_filled(BUF, 2.0f);
	y = alloc_filled(BUF, 1.0f);
	ck_assert_int_eq(coop_launch(y, x, &err), CUDA_ERROR_NOT_SUPPORTED);
	ck_assert_msg(strstr(err, "cuLaunchCooperativeKernelMultiDevice: launch 0 names buffer") != NULL,
		      "no log line: %s", err);
	ck_assert_msg(strstr(err, "simcuda: cuLaunchCooperativeKernelMultiDevice") == NULL, "reached the driver: %s",
		      err);
	free(err);
	ck_assert_int_eq(coop_launch(0, 0, &err), CUDA_ERROR_NOT_SUPPORTED);
	ck_assert_msg(strstr(err, "simcuda: cuLaunchCooperativeKernelMultiDevice is not modelled") != NULL,
		      "did not reach the driver: %s", err);
	free(err);
	simtest_expect_floats(y, NF, 1.0f);
	simtest_expect_floats(x, NF, 2.0f);
}
END_TEST

/* A capture into the app's own graph (cuStreamBeginCaptureToGraph, as XLA's command buffers use)
 * is a capture like any other: its launch is recorded, not run, and its buffers join the graph's,
 * so a launch brings them in after pressure has paged out everything else. */
START_TEST(test_capture_to_graph_pins_buffers)
{
	CUdeviceptr x, y, f[8] = {0};
	float vf[8];
	CUgraph g, ended = NULL;
	CUgraphNode first;
	CUgraphExec e;
	CUstream s;

	simtest_start("SIMCUDA_MEM=384KiB", GRAN64, THR16, NET_OFF);
	CHK(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
	x = alloc_filled(BUF, 2.0f);
	y = alloc_filled(BUF, 1.0f);
	CHK(cuGraphCreate(&g, 0));
	CHK(cuGraphAddEmptyNode(&first, g, NULL, 0));
	CHK(cuStreamBeginCaptureToGraph(s, g, &first, NULL, 1, CU_STREAM_CAPTURE_MODE_GLOBAL));
	CHK(simtest_axpy(y, x, 1.0f, NF, s));
	CHK(cuStreamEndCapture(s, &ended));
	ck_assert_ptr_eq(ended, g);
	simtest_expect_floats(y, NF, 1.0f); /* recorded, not run */
	CHK(cuGraphInstantiate(&e, g, 0));
	ck_assert_uint_gt(pressure(f, vf), 8);
	CHK(cuGraphLaunch(e, s));
	CHK(cuStreamSynchronize(s));
	simtest_expect_floats(y, NF, 3.0f);
	simtest_expect_floats(x, NF, 2.0f);
	for (int i = 0; i < 8; i++)
		simtest_expect_floats(f[i], NF, vf[i]);
	CHK(cuGraphExecDestroy(e));
	CHK(cuGraphDestroy(g));
	CHK(cuStreamDestroy(s));
}
END_TEST

static Suite *gaps_suite(void)
{
	Suite *s = suite_create("interpose_gaps");
	TCase *tc = simtest_tcase(s, "bindings", 60);

	tcase_add_test(tc, test_texture_and_surface_pin_buffers);
	tcase_add_test(tc, test_texture_bad_range_refused);
	tcase_add_test(tc, test_refused_objects_leave_buffers_pageable);
	tcase_add_test(tc, test_generic_graph_nodes_pin_buffers);
	tcase_add_test(tc, test_capture_to_graph_pins_buffers);
	tcase_add_test(tc, test_coop_multi_device_refused);
	return s;
}

int main(int argc, char **argv)
{
	itest_main_begin(argc, argv);
	return simtest_run(gaps_suite());
}
