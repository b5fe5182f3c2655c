# Numba's device arrays, byte for byte against numpy: whole arrays, interior slices both ways,
# device-to-device copies, memsets and stream-ordered copies, at sizes from one byte to 4 MiB, all
# alive at once so that a small budget must page them. Run with NUMBA_CUDA_DRIVER naming the driver.
# Prints "allocated BYTES" and, when every array came back as expected, "numba arrays OK N".
import sys

import numpy as np
from numba import cuda
from numba.cuda.cudadrv import driver

# Numba 0.56 binds each entry point by trying NAME_v2 before NAME, and CUDA 12.8 added a
# cuCtxGetDevice_v2 with a second argument (the context) that Numba would leave unset: bind the
# one-argument symbol it means, as it would have on the drivers it was written for.
_find_api = driver.Driver._find_api


def _find_api_exact(self, fname):
    if fname == "cuCtxGetDevice":
        return getattr(self.lib, fname)
    return _find_api(self, fname)


driver.Driver._find_api = _find_api_exact

SIZES = [1, 4095, 4096, 65539, 1 << 20, (2 << 20) + 5, 3 << 20, (4 << 20) - 7] + [4 << 20] * 4


def check(what, got, want):
    if got.dtype != want.dtype or got.shape != want.shape or got.tobytes() != want.tobytes():
        bad = np.flatnonzero(got != want) if got.shape == want.shape else []
        where = f" first at byte {bad[0]}" if len(bad) else ""
        sys.exit(f"numba-arrays: {what} differs from numpy{where}")


def main():
    rng = np.random.default_rng(12)
    hosts, devs, allocated = [], [], 0
    stream = cuda.stream()
    for i, n in enumerate(SIZES):
        h = rng.integers(0, 256, n, dtype=np.uint8)
        if i % 3 == 0:
            d = cuda.to_device(h)
        elif i % 3 == 1:
            d = cuda.device_array(n, dtype=np.uint8)
            d.copy_to_device(h)
        else:
            d = cuda.to_device(h, stream=stream)
        hosts.append(h)
        devs.append(d)
        allocated += n
    stream.synchronize()

    # Interior slices: written from the host, read back, and the rest left alone.
    for h, d in zip(hosts, devs):
        n = len(h)
        if n < 8:
            continue
        a, b = n // 3, n // 3 + n // 4 + 1
        patch = rng.integers(0, 256, b - a, dtype=np.uint8)
        d[a:b].copy_to_device(patch)
        h[a:b] = patch
        check(f"slice [{a}:{b}] of {n}", d[a:b].copy_to_host(), h[a:b])

    # Device-to-device copies into new arrays, and memsets of every other array.
    copies = []
    for h, d in zip(hosts, devs):
        c = cuda.device_array(len(h), dtype=np.uint8)
        allocated += len(h)
        c.copy_to_device(d)
        copies.append((h.copy(), c))
    for i, (h, d) in enumerate(zip(hosts, devs)):
        if i % 2 == 1:
            driver.device_memset(d, 0xA5, len(h))
            h[:] = 0xA5

    # Everything, in allocation order, on a stream and then synchronously.
    for i, (h, d) in enumerate(zip(hosts, devs)):
        out = np.empty_like(h)
        d.copy_to_host(out, stream=stream)
        stream.synchronize()
        check(f"array {i} of {len(h)} bytes", out, h)
    for i, (h, c) in enumerate(copies):
        check(f"copy of array {i}", c.copy_to_host(), h)
    print(f"allocated {allocated}")
    print(f"numba arrays OK {len(hosts) + len(copies)}")


main()
