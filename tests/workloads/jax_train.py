#!/usr/bin/env python3
"""JAX workload of the GPU check kit: trains a deep MLP on synthetic data with fixed seeds for a few
steps under one XLA allocator setting and writes one JSON object with the loss of each step (as
float.hex), the median step time, whether the device reports memory statistics, and its peak.

usage: jax_train.py [--alloc as-set|platform|bfc|cuda_async] [--steps N] [--batch N] [--width N]
                    [--layers N] --out FILE
       jax_train.py --compare PLAIN.json OTHER.json   (torch_train.py's comparison: exit 0 when the
                                                     losses agree)
"""
import argparse
import json
import os
import sys
import time


def train(args):
    if args.alloc != "as-set":
        # XLA reads these when its client starts, after the import below.
        os.environ["XLA_PYTHON_CLIENT_ALLOCATOR"] = "default" if args.alloc == "bfc" else args.alloc
        os.environ["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"
    import jax
    import jax.numpy as jnp

    if jax.default_backend() != "gpu":
        print("jax_train: JAX has no GPU backend (%s)" % jax.default_backend(), file=sys.stderr)
        return 2
    key = jax.random.PRNGKey(1234)
    keys = jax.random.split(key, args.layers + 2)
    scale = (2.0 / args.width) ** 0.5
    params = [jax.random.normal(k, (args.width, args.width), jnp.float32) * scale for k in keys[:args.layers]]
    x = jax.random.normal(keys[-2], (args.batch, args.width), jnp.float32)
    y = jax.random.normal(keys[-1], (args.batch, args.width), jnp.float32)

    def loss_fn(ps, x, y):
        h = x
        for w in ps:
            h = jax.nn.relu(h @ w)
        return jnp.mean((h - y) ** 2)

    @jax.jit
    def step(ps, x, y):
        loss, grads = jax.value_and_grad(loss_fn)(ps, x, y)
        return [w - 0.01 * g for w, g in zip(ps, grads)], loss

    losses, times = [], []
    for _ in range(args.steps):
        t0 = time.perf_counter()
        params, loss = step(params, x, y)
        loss = float(jax.block_until_ready(loss))
        times.append((time.perf_counter() - t0) * 1e3)
        losses.append(loss.hex())
    dev = jax.devices()[0]
    try:
        stats = dev.memory_stats()
    except Exception as e:  # a backend without statistics raises or returns None
        stats, note = None, str(e).splitlines()[0][:120]
    else:
        note = None
    steady = sorted(times[1:] or times)
    n = len(steady)
    median = steady[n // 2] if n % 2 else (steady[n // 2 - 1] + steady[n // 2]) / 2
    result = {
        "model": "mlp", "batch": args.batch, "width": args.width, "layers": args.layers,
        "steps": args.steps, "alloc": args.alloc,
        "allocator_env": os.environ.get("XLA_PYTHON_CLIENT_ALLOCATOR", ""),
        "memvirt": "memvirt" in os.environ.get("LD_PRELOAD", ""),
        "losses": losses, "loss_values": [float.fromhex(v) for v in losses],
        # The first step includes compilation; the median leaves it out.
        "step_ms": round(median, 3), "step_ms_all": [round(t, 3) for t in times],
        "stats": stats is not None, "stats_note": note,
        "peak_bytes": (stats or {}).get("peak_bytes_in_use", 0),
        # XLA's kernels are compared with a tolerance (torch_train.py --compare).
        "deterministic": False, "nondeterministic": ["XLA autotuned kernels"],
        "jax": jax.__version__,
    }
    with open(args.out, "w") as f:
        json.dump(result, f)
    for i, v in enumerate(losses):
        print("step %d loss %s (%.6f) time %.3f ms" % (i, v, float.fromhex(v), times[i]))
    print("peak bytes in use %d (statistics %s)" % (result["peak_bytes"], "yes" if stats else "no"))
    return 0


def main():
    p = argparse.ArgumentParser(description="JAX workload of the memvirt GPU check")
    p.add_argument("--alloc", choices=("as-set", "platform", "bfc", "cuda_async"), default="as-set")
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--batch", type=int, default=8192)
    p.add_argument("--width", type=int, default=4096)
    p.add_argument("--layers", type=int, default=12)
    p.add_argument("--out", default="jax_train.json")
    p.add_argument("--compare", nargs=2, metavar=("PLAIN", "OTHER"))
    args = p.parse_args()
    if args.compare:
        here = os.path.dirname(os.path.abspath(__file__))
        sys.path.insert(0, here)
        from torch_train import compare
        return compare(*args.compare)
    return train(args)


if __name__ == "__main__":
    sys.exit(main())
