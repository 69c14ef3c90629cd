#!/usr/bin/env python3
"""Peer benchmark: single-threaded f32 Dense forward out = act(x @ W + b).

x: MxK row-major, W: KxN row-major, b: N.  act in {relu, gelu (exact erf), sigmoid}.
Prints one line per (lib, shape, act):  lib M K N act GFLOPs_median
with flops = 2*M*K*N; bias + activation are inside the timed call.

  peer.py --lib {numpy,ort,jax} --shapes "32,512,512;64,1024,1024"
          --acts relu,gelu,sigmoid --seconds 1.0 [--check] [--pin CPU]
"""
import argparse
import os
import sys

# ---- single-thread environment: must be set before numpy / ort / jax import ----
os.environ["OMP_NUM_THREADS"] = "1"
os.environ["OPENBLAS_NUM_THREADS"] = "1"
os.environ["MKL_NUM_THREADS"] = "1"
os.environ["BLIS_NUM_THREADS"] = "1"
os.environ["VECLIB_MAXIMUM_THREADS"] = "1"
os.environ["NUMEXPR_NUM_THREADS"] = "1"
# XLA keeps a thread pool whatever its flags: peers/compare.sh pins every process to one
# CPU (taskset), which is what makes the jax figures single-threaded.
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                           " --xla_cpu_multi_thread_eigen=false").strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ACTS = ("relu", "gelu", "sigmoid")


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lib", required=True, choices=["numpy", "ort", "jax"])
    p.add_argument("--shapes", default="32,512,512;64,1024,1024", help='"M,K,N;M,K,N;..."')
    p.add_argument("--acts", default="relu,gelu,sigmoid")
    p.add_argument("--seconds", type=float, default=1.0, help="timed budget per (shape, act)")
    p.add_argument("--check", action="store_true", help="numerical check vs float64 numpy reference")
    p.add_argument("--pin", type=int, default=None,
                   help="pin this process to one CPU (sched_setaffinity) before importing libs")
    p.add_argument("--ort-gelu", choices=["ms", "erf", "biasgelu"], default="ms",
                   help="ORT gelu graph: MatMul+Add+com.microsoft Gelu (ms); MatMul+Add+Erf subgraph "
                        "(erf, ORT fuses it to Gelu); MatMul+com.microsoft BiasGelu (biasgelu). "
                        "With ms/erf ORT turns MatMul+Add into Gemm and leaves Gelu separate.")
    p.add_argument("--ort-dump", default=None, help="write ORT optimized model(s) to this directory")
    p.add_argument("--verbose", action="store_true", help="print CPU-utilisation info to stderr")
    a = p.parse_args()
    a.shapes = [tuple(int(v) for v in s.split(",")) for s in a.shapes.split(";") if s.strip()]
    a.acts = [s.strip() for s in a.acts.split(",") if s.strip()]
    for s in a.acts:
        if s not in ACTS:
            p.error(f"unknown act {s}")
    return a


args = parse_args()
if args.pin is not None:
    os.sched_setaffinity(0, {args.pin})

import time  # noqa: E402
import numpy as np  # noqa: E402
import scipy.special  # noqa: E402

SQRT1_2 = np.float32(1.0 / np.sqrt(2.0))


def make_inputs(M, K, N, seed=1234):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (M, K)).astype(np.float32)
    W = (rng.uniform(-1, 1, (K, N)) / np.sqrt(K)).astype(np.float32)
    b = rng.uniform(-1, 1, (N,)).astype(np.float32)
    return x, W, b


def reference(x, W, b, act):
    y = x.astype(np.float64) @ W.astype(np.float64) + b.astype(np.float64)
    if act == "relu":
        return np.maximum(y, 0.0)
    if act == "gelu":
        return 0.5 * y * (1.0 + scipy.special.erf(y / np.sqrt(2.0)))
    return scipy.special.expit(y)


# ------------------------------------------------------------------ numpy
def build_numpy(x, W, b, act):
    M, N = x.shape[0], W.shape[1]
    out = np.empty((M, N), np.float32)
    tmp = np.empty((M, N), np.float32)
    erf = scipy.special.erf
    expit = scipy.special.expit

    if act == "relu":
        def f():
            np.matmul(x, W, out=out)
            np.add(out, b, out=out)
            np.maximum(out, 0.0, out=out)
            return out
    elif act == "gelu":
        def f():
            np.matmul(x, W, out=out)
            np.add(out, b, out=out)
            np.multiply(out, SQRT1_2, out=tmp)
            erf(tmp, out=tmp)
            np.add(tmp, 1.0, out=tmp)
            np.multiply(out, tmp, out=out)
            np.multiply(out, 0.5, out=out)
            return out
    else:
        def f():
            np.matmul(x, W, out=out)
            np.add(out, b, out=out)
            expit(out, out=out)
            return out
    return f


# ------------------------------------------------------------------ onnxruntime
_ort = None


def _onnx_model(W, b, act, gelu_mode):
    import onnx
    from onnx import helper, TensorProto, numpy_helper
    K, N = W.shape
    nodes = [helper.make_node("MatMul", ["x", "W"], ["xw"])]
    if not (act == "gelu" and gelu_mode == "biasgelu"):
        nodes.append(helper.make_node("Add", ["xw", "b"], ["y"]))
    inits = [numpy_helper.from_array(W, "W"), numpy_helper.from_array(b, "b")]
    opsets = [helper.make_opsetid("", 17)]
    if act == "relu":
        nodes.append(helper.make_node("Relu", ["y"], ["out"]))
    elif act == "sigmoid":
        nodes.append(helper.make_node("Sigmoid", ["y"], ["out"]))
    elif gelu_mode == "biasgelu":
        nodes.append(helper.make_node("BiasGelu", ["xw", "b"], ["out"], domain="com.microsoft"))
        opsets.append(helper.make_opsetid("com.microsoft", 1))
    elif gelu_mode == "ms":
        nodes.append(helper.make_node("Gelu", ["y"], ["out"], domain="com.microsoft"))
        opsets.append(helper.make_opsetid("com.microsoft", 1))
    else:  # Erf subgraph: 0.5 * y * (1 + erf(y / sqrt2))  -> ORT GeluFusion
        inits += [numpy_helper.from_array(np.array(np.sqrt(2.0), np.float32), "sqrt2"),
                  numpy_helper.from_array(np.array(1.0, np.float32), "one"),
                  numpy_helper.from_array(np.array(0.5, np.float32), "half")]
        nodes += [helper.make_node("Div", ["y", "sqrt2"], ["d"]),
                  helper.make_node("Erf", ["d"], ["e"]),
                  helper.make_node("Add", ["e", "one"], ["e1"]),
                  helper.make_node("Mul", ["y", "e1"], ["ye"]),
                  helper.make_node("Mul", ["ye", "half"], ["out"])]
    graph = helper.make_graph(
        nodes, "dense",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["M", K])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["M", N])],
        initializer=inits)
    model = helper.make_model(graph, opset_imports=opsets, producer_name="peer.py")
    model.ir_version = 9
    onnx.checker.check_model(model)
    return model.SerializeToString()


def build_ort(x, W, b, act):
    global _ort
    import onnxruntime as ort
    _ort = ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3  # silence the "optimized model serialization" warning
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.add_session_config_entry("session.inter_op.allow_spinning", "0")
    if args.ort_dump:
        os.makedirs(args.ort_dump, exist_ok=True)
        M, K = x.shape
        so.optimized_model_filepath = os.path.join(
            args.ort_dump, f"opt_{M}x{K}x{W.shape[1]}_{act}_{args.ort_gelu}.onnx")
    sess = ort.InferenceSession(_onnx_model(W, b, act, args.ort_gelu), so,
                                providers=["CPUExecutionProvider"])
    M, N = x.shape[0], W.shape[1]
    out = np.empty((M, N), np.float32)
    xv = ort.OrtValue.ortvalue_from_numpy(x)
    ov = ort.OrtValue.ortvalue_from_numpy(out)
    io = sess.io_binding()
    io.bind_ortvalue_input("x", xv)
    io.bind_ortvalue_output("out", ov)
    ro = ort.RunOptions()

    def f():
        sess.run_with_iobinding(io, ro)
        return out
    f.session = sess
    return f


# ------------------------------------------------------------------ jax
def build_jax(x, W, b, act):
    import jax
    import jax.numpy as jnp
    jax.config.update("jax_platforms", "cpu")
    if act == "relu":
        def dense(x, W, b):
            return jax.nn.relu(jnp.matmul(x, W) + b)
    elif act == "gelu":
        def dense(x, W, b):
            return jax.nn.gelu(jnp.matmul(x, W) + b, approximate=False)
    else:
        def dense(x, W, b):
            return jax.nn.sigmoid(jnp.matmul(x, W) + b)
    jf = jax.jit(dense)
    dev = jax.devices("cpu")[0]
    xd, Wd, bd = (jax.device_put(a, dev) for a in (x, W, b))
    jf(xd, Wd, bd).block_until_ready()  # compile

    def f():
        return jf(xd, Wd, bd).block_until_ready()
    return f


BUILDERS = {"numpy": build_numpy, "ort": build_ort, "jax": build_jax}


def bench(f, seconds):
    # warm-up: >=3 calls and ~10% of the budget
    t0 = time.perf_counter()
    n = 0
    while n < 3 or time.perf_counter() - t0 < 0.1 * seconds:
        f()
        n += 1
    times = []
    pc = time.perf_counter
    c0 = time.process_time()
    start = pc()
    while len(times) < 5 or pc() - start < seconds:
        t = pc()
        f()
        times.append(pc() - t)
    wall = pc() - start
    cpu = time.process_time() - c0
    return float(np.median(times)), len(times), cpu / wall


def main():
    lib = args.lib
    if args.check:
        all_ok = True
        for (M, K, N) in [(7, 33, 17), (64, 128, 96)]:
            x, W, b = make_inputs(M, K, N, seed=42)
            for act in args.acts:
                f = BUILDERS[lib](x, W, b, act)
                f()
                got = np.asarray(f()).astype(np.float64)
                ref = reference(x, W, b, act)
                err = float(np.max(np.abs(got - ref)))
                rel = err / max(float(np.max(np.abs(ref))), 1e-30)
                ok = rel <= 1e-3 and got.shape == ref.shape
                all_ok &= ok
                print(f"check {lib} {M} {K} {N} {act} max_abs_err={err:.3e} rel={rel:.3e} "
                      f"{'OK' if ok else 'FAIL'}", flush=True)
        sys.exit(0 if all_ok else 1)

    for (M, K, N) in args.shapes:
        x, W, b = make_inputs(M, K, N)
        flops = 2.0 * M * K * N
        for act in args.acts:
            f = BUILDERS[lib](x, W, b, act)
            med, reps, util = bench(f, args.seconds)
            print(f"{lib} {M} {K} {N} {act} {flops / med / 1e9:.2f}", flush=True)
            if args.verbose:
                print(f"#   reps={reps} median_us={med * 1e6:.1f} cpu_util={util:.2f} "
                      f"threads={len(os.listdir('/proc/self/task'))}", file=sys.stderr)


if __name__ == "__main__":
    main()
