#!/usr/bin/env python3
"""Peer timing of one training step of a 784->512->256->10 relu/softmax MLP, f32, batch 128.

One step = forward + loss + backward + Adam update (lr 1e-3), for:

  torch  nn.Sequential(Linear(784,512), ReLU, Linear(512,256), ReLU, Linear(256,10)),
         nn.CrossEntropyLoss() (softmax + CCE fused, the natural PyTorch way),
         torch.optim.Adam(lr=1e-3); step = zero_grad, forward, loss, backward, opt.step()
  keras  Keras 3 on jax: Sequential([Input((784,)), Dense(512,'relu'), Dense(256,'relu'),
         Dense(10,'softmax')]), compile(optimizer='adam', loss='categorical_crossentropy'),
         the timed call is model.train_on_batch(x, y_onehot) with numpy x, y

Input: x ~ N(0,1) (128, 784) f32 and labels uniform in 0..9, fixed seed.

Threads: every library runs in its own subprocess pinned with `taskset -c 0` (1 thread) or
`taskset -c 0,1` (2 threads). On top of that torch gets torch.set_num_threads(t) (and
OMP/MKL_NUM_THREADS=t); XLA sizes its CPU thread pools from the CPUs the process may run on,
so the pinning is what sets jax's thread count (for 1 thread we also pass
--xla_cpu_multi_thread_eigen=false). Each worker reports the process CPU time over wall
time of the timed steps on stderr (`cpu/wall`), which shows how many cores it really used,
and the CPU time all other processes took meanwhile (from /proc/stat): a figure taken while
that is well above 0 was disturbed.

FLOPs per step, counting only the GEMMs a step needs (2*M*K*N each, M = 128):
  forward 3 GEMMs, dW 3 GEMMs, dx 2 GEMMs (layers 2 and 3: layer 1's dx is not needed,
  and neither torch autograd nor jax.grad computes it)
  = 2*128*(2*(784*512 + 512*256 + 256*10) + (512*256 + 256*10)) = 308,150,272 flop.
Elementwise work (bias, relu, softmax, Adam) is not counted.

Output, one line per lib:  lib threads ms_per_step_median gflops
(the median over every timed step; each round's mean goes to stderr).

  train_step.py --lib torch|keras|all --threads 1|2 [--rounds N] [--seconds S] [--check]

Warm-up: --warmup steps (default 10, jit compile included there), then --rounds rounds of
~--seconds each. --check: one step of each lib changes every weight, and the loss on the
fixed batch decreases over 20 steps.
"""
import argparse
import os
import statistics
import subprocess
import sys
import time

B, DIMS = 128, (784, 512, 256, 10)
FLOPS = 2 * B * (2 * sum(DIMS[i] * DIMS[i + 1] for i in range(3))
                 + sum(DIMS[i] * DIMS[i + 1] for i in range(1, 3)))
LIBS = ("torch", "keras")


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lib", default="all", choices=LIBS + ("all",))
    p.add_argument("--threads", type=int, default=1, choices=[1, 2])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=float, default=0.5, help="timed length of one round")
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--check", action="store_true")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    return p.parse_args()


def data():
    import numpy as np
    rng = np.random.default_rng(12345)
    x = rng.standard_normal((B, DIMS[0]), dtype=np.float32)
    labels = rng.integers(0, DIMS[-1], size=B)
    y = np.eye(DIMS[-1], dtype=np.float32)[labels]
    return x, labels, y


# ---------------------------------------------------------------- torch
def make_torch(threads):
    import torch
    from torch import nn
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    x, labels, _ = data()
    xt, lt = torch.from_numpy(x), torch.from_numpy(labels).long()
    model = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 256), nn.ReLU(),
                          nn.Linear(256, 10))
    loss_fn = nn.CrossEntropyLoss()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step():
        opt.zero_grad()
        loss = loss_fn(model(xt), lt)
        loss.backward()
        opt.step()
        return loss.item()

    def weights():
        return [p.detach().numpy().copy() for p in model.parameters()]

    return step, weights


# ---------------------------------------------------------------- keras (jax)
def make_keras(threads):
    import keras
    assert keras.backend.backend() == "jax", keras.backend.backend()
    keras.utils.set_random_seed(0)
    x, _, y = data()
    model = keras.Sequential([keras.Input((784,)), keras.layers.Dense(512, "relu"),
                              keras.layers.Dense(256, "relu"), keras.layers.Dense(10, "softmax")])
    model.compile(optimizer="adam", loss="categorical_crossentropy")

    def step():
        return float(model.train_on_batch(x, y))

    def weights():
        return [w.copy() for w in model.get_weights()]

    return step, weights


def busy_seconds():
    """System-wide busy CPU time (all CPUs) from /proc/stat, to spot other load."""
    try:
        with open("/proc/stat") as f:
            v = [int(t) for t in f.readline().split()[1:]]
        return (sum(v[:8]) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return float("nan")


def worker(args):
    import numpy as np
    make = {"torch": make_torch, "keras": make_keras}[args.lib]
    step, weights = make(args.threads)
    if args.check:
        w0 = weights()
        l0 = step()
        w1 = weights()
        changed = all(not np.array_equal(a, b) for a, b in zip(w0, w1))
        losses = [l0] + [step() for _ in range(19)]
        ok = changed and losses[-1] < losses[0]
        print(f"check {args.lib}: {len(w0)} weight arrays all changed by one step: {changed}; "
              f"loss {losses[0]:.4f} -> {losses[-1]:.4f} over 20 steps: "
              f"{'OK' if ok else 'FAIL'}")
        return 0 if ok else 1
    for _ in range(args.warmup):
        step()
    t0 = time.perf_counter()
    n = 0
    while time.perf_counter() - t0 < 0.2 or n < 3:
        step()
        n += 1
    per_round = max(3, int(args.seconds * n / (time.perf_counter() - t0)))
    times, means = [], []
    cpu0, wall0, busy0 = time.process_time(), time.perf_counter(), busy_seconds()
    for _ in range(args.rounds):
        rt = []
        for _ in range(per_round):
            s = time.perf_counter()
            step()
            rt.append(time.perf_counter() - s)
        times += rt
        means.append(1e3 * sum(rt) / len(rt))
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    other = (busy_seconds() - busy0 - cpu) / wall
    ms = 1e3 * statistics.median(times)
    print(f"# {args.lib} t={args.threads}: {per_round} steps/round, round means "
          + " ".join(f"{m:.3f}" for m in means) + f" ms; cpu/wall {cpu / wall:.2f}; "
          f"other processes' cpu/wall {max(other, 0.0):.2f}; "
          f"affinity {sorted(os.sched_getaffinity(0))}; "
          f"os threads {len(os.listdir('/proc/self/task'))}", file=sys.stderr)
    print(f"{args.lib} {args.threads} {ms:.3f} {FLOPS / (ms * 1e-3) / 1e9:.2f}")
    return 0


def main():
    args = parse_args()
    if args.worker:
        return worker(args)
    cpus = "0" if args.threads == 1 else "0,1"
    rc = 0
    for lib in (LIBS if args.lib == "all" else (args.lib,)):
        env = dict(os.environ)
        t = str(args.threads)
        env.update(OMP_NUM_THREADS=t, MKL_NUM_THREADS=t, OPENBLAS_NUM_THREADS=t,
                   KERAS_BACKEND="jax", JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="2")
        if args.threads == 1:
            env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false").strip()
        cmd = ["taskset", "-c", cpus, sys.executable, os.path.abspath(__file__), "--worker",
               "--lib", lib, "--threads", t, "--rounds", str(args.rounds),
               "--seconds", str(args.seconds), "--warmup", str(args.warmup)]
        if args.check:
            cmd.append("--check")
        rc |= subprocess.run(cmd, env=env).returncode
    return rc


if __name__ == "__main__":
    sys.exit(main())
