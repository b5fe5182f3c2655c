#!/usr/bin/env python3
"""PyTorch workload of the GPU check kit: trains ResNet-50 or a GPT-style Transformer on synthetic
data with fixed seeds for a few steps and writes one JSON object with the loss of each step (exact,
as float.hex), the median step time measured with CUDA events, and the peak device memory.

usage: torch_train.py --model resnet50|transformer [--steps N] [--batch N] [--save-on-cpu]
                     [--alloc as-set|uncached|async|caching] [--graph-probe] --out FILE
       torch_train.py --compare PLAIN.json OTHER.json   (exit 0 when the losses agree)
"""
import argparse
import json
import math
import os
import sys
import warnings

# A loss that differs from the plain run's by more than this fraction is a failure when some kernel
# of the run is not deterministic, so that exact bits cannot be expected (see --compare).
TOLERANCE = 1e-3


def compare(plain_path, other_path):
    with open(plain_path) as f:
        plain = json.load(f)
    with open(other_path) as f:
        other = json.load(f)
    if len(plain["losses"]) != len(other["losses"]):
        print("MISMATCH: %d losses, the plain run has %d" % (len(other["losses"]), len(plain["losses"])))
        return 1
    if plain["losses"] == other["losses"]:
        print("bitwise")
        return 0
    exact = plain["deterministic"] and other["deterministic"]
    worst = 0.0
    for a, b in zip(plain["losses"], other["losses"]):
        a, b = float.fromhex(a), float.fromhex(b)
        if not (math.isfinite(a) and math.isfinite(b)):
            print("MISMATCH: a loss is not finite")
            return 1
        worst = max(worst, abs(a - b) / max(abs(a), 1e-30))
    if exact:
        # Every kernel was deterministic, yet the bits differ: a wrong answer, not rounding.
        print("MISMATCH: deterministic kernels, losses differ (relative %.3g)" % worst)
        return 1
    if worst <= TOLERANCE:
        print("within %g (nondeterministic kernels: %s)" %
              (TOLERANCE, ", ".join(plain["nondeterministic"] + other["nondeterministic"]) or "unknown"))
        return 0
    print("MISMATCH: relative difference %.3g > %g" % (worst, TOLERANCE))
    return 1


def build_resnet50(nn):
    """torchvision's ResNet-50, or the same network written here when torchvision is absent. The
    global average pool is a mean, whose backward is deterministic (adaptive pooling's is not)."""
    try:
        import torchvision
        model = torchvision.models.resnet50(weights=None, num_classes=1000)
        source = "torchvision"
    except ImportError:
        model, source = _resnet50(nn), "torch.nn"

    class Mean(nn.Module):
        def forward(self, x):
            return x.mean((2, 3), keepdim=True)

    model.avgpool = Mean()
    return model, source


def _resnet50(nn):
    class Bottleneck(nn.Module):
        def __init__(self, cin, width, stride):
            super().__init__()
            cout = width * 4
            self.body = nn.Sequential(
                nn.Conv2d(cin, width, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
                nn.Conv2d(width, width, 3, stride, 1, bias=False), nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
                nn.Conv2d(width, cout, 1, bias=False), nn.BatchNorm2d(cout))
            self.down = None
            if stride != 1 or cin != cout:
                self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                          nn.BatchNorm2d(cout))
            self.relu = nn.ReLU(inplace=True)

        def forward(self, x):
            skip = x if self.down is None else self.down(x)
            return self.relu(self.body(x) + skip)

    class ResNet50(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64),
                                      nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1))
            layers, cin = [], 64
            for width, blocks, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
                for i in range(blocks):
                    layers.append(Bottleneck(cin, width, stride if i == 0 else 1))
                    cin = width * 4
            self.layers = nn.Sequential(*layers)
            self.avgpool = nn.Identity()
            self.fc = nn.Linear(2048, 1000)

        def forward(self, x):
            x = self.avgpool(self.layers(self.stem(x)))
            return self.fc(x.flatten(1))

    return ResNet50()


def build_transformer(torch, nn, vocab, seq, dim=768, heads=12, layers=12):
    """A GPT-style decoder: learned positions, pre-norm blocks, causal attention written out (the
    fused attention kernels' backward passes are not deterministic)."""

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
            self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
            self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))
            self.register_buffer("mask", torch.ones(seq, seq, dtype=torch.bool).triu(1), persistent=False)

        def forward(self, x):
            b, t, _ = x.shape
            q, k, v = self.qkv(self.ln1(x)).split(dim, dim=2)
            q, k, v = (z.view(b, t, heads, dim // heads).transpose(1, 2) for z in (q, k, v))
            att = (q @ k.transpose(-2, -1)) / math.sqrt(dim // heads)
            att = att.masked_fill(self.mask[:t, :t], float("-inf")).softmax(-1)
            x = x + self.proj((att @ v).transpose(1, 2).reshape(b, t, dim))
            return x + self.mlp(self.ln2(x))

    class GPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.tok, self.pos = nn.Embedding(vocab, dim), nn.Embedding(seq, dim)
            self.blocks = nn.Sequential(*[Block() for _ in range(layers)])
            self.ln, self.head = nn.LayerNorm(dim), nn.Linear(dim, vocab)

        def forward(self, idx):
            pos = torch.arange(idx.shape[1], device=idx.device)
            return self.head(self.ln(self.blocks(self.tok(idx) + self.pos(pos))))

    return GPT()


# The PyTorch allocator settings that --alloc chooses between, written into the environment before
# torch is imported (PyTorch reads them when its allocator starts).
ALLOC_ENV = {
    "uncached": {"PYTORCH_NO_CUDA_MEMORY_CACHING": "1", "PYTORCH_CUDA_ALLOC_CONF": None},
    "async": {"PYTORCH_NO_CUDA_MEMORY_CACHING": None, "PYTORCH_CUDA_ALLOC_CONF": "backend:cudaMallocAsync"},
    "caching": {"PYTORCH_NO_CUDA_MEMORY_CACHING": None, "PYTORCH_CUDA_ALLOC_CONF": None},
}


def set_alloc(mode):
    for name, value in ALLOC_ENV.get(mode, {}).items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def graph_probe(torch, nn):
    """Captures one training step of a small network in a CUDA graph, replays it and compares the
    result with the same step run eagerly: 'ok', 'refused: ...' when capture raises, or 'mismatch'."""
    torch.manual_seed(7)
    net = nn.Sequential(nn.Linear(1024, 4096), nn.ReLU(), nn.Linear(4096, 1024)).cuda()
    ref = nn.Sequential(nn.Linear(1024, 4096), nn.ReLU(), nn.Linear(4096, 1024)).cuda()
    ref.load_state_dict(net.state_dict())
    x = torch.randn(256, 1024, device="cuda")
    try:
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                net.zero_grad(set_to_none=False)
                net(x).square().mean().backward()
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        net.zero_grad(set_to_none=False)
        with torch.cuda.graph(graph):
            out = net(x).square().mean()
            out.backward()
        graph.replay()
        torch.cuda.synchronize()
    except Exception as e:  # the allocator's refusal is the finding, whatever its type
        return "refused: %s" % str(e).splitlines()[0][:160]
    ref.zero_grad(set_to_none=False)
    ref(x).square().mean().backward()
    same = all(torch.equal(a.grad, b.grad) for a, b in zip(net.parameters(), ref.parameters()))
    return "ok" if same else "mismatch"


def train(args):
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    set_alloc(args.alloc)
    import torch
    import torch.nn as nn

    if not torch.cuda.is_available():
        print("torch_train: CUDA is not available to PyTorch", file=sys.stderr)
        return 2
    torch.manual_seed(1234)
    torch.cuda.manual_seed_all(1234)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    # warn_only: an op without a deterministic kernel is recorded (and the comparison then uses a
    # tolerance) instead of stopping the run.
    torch.use_deterministic_algorithms(True, warn_only=True)
    dev = torch.device("cuda")

    gen = torch.Generator().manual_seed(42)
    if args.model == "resnet50":
        batch = args.batch or 32
        model, source = build_resnet50(nn)
        x = torch.randn(batch, 3, 224, 224, generator=gen)
        y = torch.randint(0, 1000, (batch,), generator=gen)
    else:
        batch, seq, vocab = args.batch or 16, 512, 8192
        model, source = build_transformer(torch, nn, vocab, seq), "torch.nn"
        x = torch.randint(0, vocab, (batch, seq), generator=gen)
        y = torch.randint(0, vocab, (batch, seq), generator=gen)
    model = model.to(dev)
    x, y = x.to(dev), y.to(dev)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    lossf = nn.CrossEntropyLoss()

    losses, times, nondet = [], [], set()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(args.steps):
            start.record()
            opt.zero_grad(set_to_none=True)
            if args.save_on_cpu:
                with torch.autograd.graph.save_on_cpu(pin_memory=True):
                    out = model(x)
                    loss = lossf(out.reshape(-1, out.shape[-1]), y.reshape(-1))
            else:
                out = model(x)
                loss = lossf(out.reshape(-1, out.shape[-1]), y.reshape(-1))
            loss.backward()
            opt.step()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
            losses.append(float(loss.item()).hex())
    for w in caught:
        text = str(w.message)
        if "deterministic" in text:
            nondet.add(text.split(" does not have")[0].strip()[:80])
    free, total = torch.cuda.mem_get_info()
    times_sorted = sorted(times[1:] or times)
    n = len(times_sorted)
    median = times_sorted[n // 2] if n % 2 else (times_sorted[n // 2 - 1] + times_sorted[n // 2]) / 2
    result = {
        "model": args.model, "source": source, "batch": batch, "steps": args.steps,
        "mode": "save_on_cpu" if args.save_on_cpu else "plain",
        "memvirt": "memvirt" in os.environ.get("LD_PRELOAD", ""),
        "losses": losses, "loss_values": [float.fromhex(v) for v in losses],
        "step_ms": round(median, 3), "step_ms_all": [round(t, 3) for t in times],
        "peak_allocated": torch.cuda.max_memory_allocated(),
        "peak_reserved": torch.cuda.max_memory_reserved(),
        "device_total": total, "device_free_at_end": free,
        "deterministic": not nondet, "nondeterministic": sorted(nondet),
        "torch": torch.__version__, "alloc": args.alloc,
        "allocator_backend": torch.cuda.get_allocator_backend(),
        "graph": graph_probe(torch, nn) if args.graph_probe else None,
    }
    with open(args.out, "w") as f:
        json.dump(result, f)
    for i, v in enumerate(losses):
        print("step %d loss %s (%.6f) time %.3f ms" % (i, v, float.fromhex(v), times[i]))
    print("peak reserved %d allocated %d" % (result["peak_reserved"], result["peak_allocated"]))
    return 0


def main():
    p = argparse.ArgumentParser(description="PyTorch workload of the memvirt GPU check")
    p.add_argument("--model", choices=("resnet50", "transformer"), default="transformer")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--batch", type=int, default=0)
    p.add_argument("--save-on-cpu", action="store_true")
    p.add_argument("--alloc", choices=("as-set",) + tuple(ALLOC_ENV), default="as-set",
                   help="PyTorch allocator: as the environment sets it, or one chosen here")
    p.add_argument("--graph-probe", action="store_true",
                   help="also capture and replay one step of a small network in a CUDA graph")
    p.add_argument("--out", default="torch_train.json")
    p.add_argument("--compare", nargs=2, metavar=("PLAIN", "OTHER"))
    args = p.parse_args()
    if args.compare:
        return compare(*args.compare)
    return train(args)


if __name__ == "__main__":
    sys.exit(main())
