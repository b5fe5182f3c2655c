/* Queues more launches than the library has timing slots behind a stream the app itself holds back.
 *
 * usage: holdlaunch hold|release SLOTS ITERS PER
 *
 * A stream first waits (cuStreamWaitValue32) for a word of pinned host memory to become 1, so none
 * of its work runs; then ITERS iterations, each a launch of mv_touch2 (the iteration marker) and
 * PER launches of mv_fill, and a last mv_touch2, all on that stream. `hold` writes the word only
 * after every launch was issued: the launches after the first SLOTS find no free timing slot and
 * cannot get one while the stream is held. The library times the stream's wait as it times a launch,
 * in a slot of its own, so launch SLOTS is the first to need a slot an earlier one still holds:
 * `release` writes the word from a second thread as soon as the main thread has begun it.
 * Then it synchronizes and prints "launches N". Exit 0, or 1 with the failing call. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cuda.h>

#define TRY(call)                                                                                  \
	do {                                                                                       \
		CUresult r_ = (call);                                                                \
		if (r_ != CUDA_SUCCESS) {                                                            \
			fprintf(stderr, "holdlaunch: %s failed: %d\n", #call, (int)r_);               \
			exit(1);                                                                     \
		}                                                                                    \
	} while (0)

static volatile uint32_t *word;
static _Atomic unsigned long begun; /* launches the main thread has begun */
static unsigned long slots;

/* The release thread: writes the word once launch SLOTS has begun. */
static void *releaser(void *arg)
{
	const struct timespec pause = {0, 100000};

	(void)arg;
	while (begun < slots)
		nanosleep(&pause, NULL);
	__atomic_store_n(word, 1, __ATOMIC_SEQ_CST);
	return NULL;
}

static unsigned long arg_num(const char *what, const char *s)
{
	char *end;
	unsigned long v = strtoul(s, &end, 10);

	if (*s == '\0' || *end != '\0' || v == 0) {
		fprintf(stderr, "holdlaunch: bad %s '%s'\n", what, s);
		exit(2);
	}
	return v;
}

int main(int argc, char **argv)
{
	CUdevice dev;
	CUcontext ctx;
	CUmodule mod;
	CUfunction fill, mark;
	CUstream s;
	CUdeviceptr d;
	void *h;
	pthread_t t;
	unsigned long iters, per, n = 4096 / sizeof(float);
	float v = 1.0f;
	int release;

	if (argc != 5 || (strcmp(argv[1], "hold") != 0 && strcmp(argv[1], "release") != 0)) {
		fprintf(stderr, "usage: holdlaunch hold|release SLOTS ITERS PER\n");
		return 2;
	}
	release = strcmp(argv[1], "release") == 0;
	slots = arg_num("SLOTS", argv[2]);
	iters = arg_num("ITERS", argv[3]);
	per = arg_num("PER", argv[4]);
	TRY(cuInit(0));
	TRY(cuDeviceGet(&dev, 0));
	TRY(cuDevicePrimaryCtxRetain(&ctx, dev));
	TRY(cuCtxSetCurrent(ctx));
	TRY(cuModuleLoadData(&mod, "simcuda"));
	TRY(cuModuleGetFunction(&fill, mod, "mv_fill"));
	TRY(cuModuleGetFunction(&mark, mod, "mv_touch2"));
	TRY(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING));
	TRY(cuMemAlloc(&d, 4096));
	TRY(cuMemAllocHost(&h, 4096));
	word = h;
	*word = 0;
	TRY(cuStreamWaitValue32(s, (CUdeviceptr)(uintptr_t)h, 1, CU_STREAM_WAIT_VALUE_GEQ));
	if (release && pthread_create(&t, NULL, releaser, NULL) != 0) {
		fprintf(stderr, "holdlaunch: pthread_create failed\n");
		return 1;
	}
	for (unsigned long i = 0; i <= iters; i++) {
		void *margs[] = {&d, &d, &d};
		void *fargs[] = {&d, &v, &n};

		begun++;
		TRY(cuLaunchKernel(mark, 1, 1, 1, 1, 1, 1, 0, s, margs, NULL));
		for (unsigned long j = 0; i < iters && j < per; j++) {
			begun++;
			TRY(cuLaunchKernel(fill, 1, 1, 1, 1, 1, 1, 0, s, fargs, NULL));
		}
	}
	if (release)
		pthread_join(t, NULL);
	else
		__atomic_store_n(word, 1, __ATOMIC_SEQ_CST);
	TRY(cuStreamSynchronize(s));
	printf("launches %lu\n", (unsigned long)begun);
	return 0;
}
