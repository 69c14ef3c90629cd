#!/usr/bin/env python3
"""Check that real Keras reads the model files the crate writes, and predicts what the
crate predicted.

How to run (from the repository root, same environment as gen_model_files.py):

    /tmp/kvenv/bin/python tests/model_files/check_crate_files.py DIR [--verbose]

For every `DIR/<stem>.keras` that has a sibling `DIR/<stem>.json` holding the crate's
own prediction

    {"input_shape": [rows, ...], "input": [flat values],
     "output_shape": [rows, ...], "output": [flat values]}

the script

1. loads `<stem>.keras` with `keras.saving.load_model`, prints its `summary()`, and
   predicts on the JSON's input;
2. where `DIR/<stem>.weights.h5` exists, builds a fresh model of the same architecture
   (`keras.models.clone_model` of the loaded one: new weights), calls
   `load_weights(<stem>.weights.h5)` on it and predicts again;
3. prints, for each prediction, the largest absolute difference from the JSON's output
   and whether it is within the tolerance: `1e-5 * max(1, max|output|)` (`--tol32`
   for float32 models, `--tol64` for float64 ones). The float64 default is as loose as
   the float32 one on purpose: Keras 3.15 on JAX evaluates some activations of a float64
   Dense (tanh among them) in float32, so its float64 predictions are only
   float32-accurate.

Keras 3.15's sparsemax is not the paper's (the crate follows the paper): where a model
has a sparsemax activation and Keras's own prediction misses, the prediction is redone
with the paper's sparsemax swapped in for Keras's, and a match there counts (it is
reported as such).

Float64 models need JAX's 64-bit mode, which must be chosen before jax is imported: the
script looks into every `.keras` file's config.json first and sets JAX_ENABLE_X64=1 when
one of them mentions float64 (float32 models stay float32 in that mode).

Exit status: 0 when every checked file matches, 1 when any mismatches or fails to load,
2 on bad usage or when DIR has no `.keras` file with a `.json` beside it.
"""

import argparse
import glob
import json
import os
import sys
import traceback
import zipfile


def wants_x64(paths):
    for p in paths:
        try:
            with zipfile.ZipFile(p) as z:
                if b'"float64"' in z.read("config.json"):
                    return True
        except Exception:  # noqa: BLE001 - a broken file is reported later
            pass
    return False


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dir", help="folder with <stem>.keras and <stem>.json files")
    ap.add_argument("--tol32", type=float, default=1e-5,
                    help="relative tolerance for float32 models (default 1e-5)")
    ap.add_argument("--tol64", type=float, default=1e-5,
                    help="relative tolerance for float64 models (default 1e-5: Keras "
                    "3.15 computes some float64 activations in float32)")
    ap.add_argument("--no-summary", action="store_true", help="do not print summaries")
    ap.add_argument("--verbose", action="store_true",
                    help="print the outputs side by side when they differ")
    args = ap.parse_args()

    if not os.path.isdir(args.dir):
        print("error: %s is not a directory" % args.dir)
        return 2
    all_keras = sorted(glob.glob(os.path.join(args.dir, "*.keras")))
    pairs = []
    for p in all_keras:
        stem = p[: -len(".keras")]
        if os.path.exists(stem + ".json"):
            pairs.append((p, stem + ".json"))
        else:
            print("skip %s: no %s" % (os.path.basename(p), os.path.basename(stem) + ".json"))
    if not pairs:
        print("error: no <stem>.keras with a <stem>.json beside it in %s" % args.dir)
        return 2

    os.environ.setdefault("KERAS_BACKEND", "jax")
    if wants_x64([p for p, _ in pairs]):
        os.environ["JAX_ENABLE_X64"] = "1"
    import warnings

    warnings.simplefilter("ignore")
    import logging

    logging.getLogger("absl").setLevel(logging.ERROR)
    import keras
    import numpy as np

    print("keras %s, backend %s, JAX_ENABLE_X64=%s"
          % (keras.__version__, keras.backend.backend(), os.environ.get("JAX_ENABLE_X64", "")))

    def paper_sparsemax(x, axis=-1):
        ops = keras.ops
        z = ops.convert_to_tensor(x)
        zs = ops.flip(ops.sort(z, axis=axis), axis=axis)
        c = ops.cumsum(zs, axis=axis)
        n = z.shape[axis]
        r = ops.cast(ops.arange(1, n + 1), z.dtype)
        support = ops.cast(zs - (c - 1.0) / r > 0, z.dtype)
        k = ops.sum(support, axis=axis, keepdims=True)
        ck = ops.take_along_axis(c, ops.cast(k, "int32") - 1, axis=axis)
        tau = (ck - 1.0) / k
        return ops.maximum(z - tau, 0.0)

    def has_sparsemax(model):
        return any(getattr(getattr(l, "activation", None), "__name__", "") == "sparsemax"
                   for l in model.layers)

    def with_paper_sparsemax(model):
        for l in model.layers:
            if getattr(getattr(l, "activation", None), "__name__", "") == "sparsemax":
                l.activation = paper_sparsemax
        # predict() caches a compiled function; drop it so the new activation is traced.
        model.predict_function = None
        return model

    failures = 0
    for kpath, jpath in pairs:
        name = os.path.basename(kpath)
        print()
        print("=" * 78)
        print(name)
        try:
            with open(jpath) as f:
                ref = json.load(f)
            for key in ("input_shape", "input", "output_shape", "output"):
                if key not in ref:
                    raise ValueError("%s has no %r" % (os.path.basename(jpath), key))
        except Exception as exc:  # noqa: BLE001
            print("  FAIL reading %s: %s" % (os.path.basename(jpath), exc))
            failures += 1
            continue
        try:
            model = keras.saving.load_model(kpath)
        except Exception as exc:  # noqa: BLE001
            print("  FAIL: keras.saving.load_model raised %s: %s" % (type(exc).__name__, exc))
            if args.verbose:
                traceback.print_exc()
            failures += 1
            continue

        dtype = np.dtype(model.inputs[0].dtype) if model.inputs else np.dtype("float32")
        tol_rel = args.tol64 if dtype == np.float64 else args.tol32
        if not args.no_summary:
            lines = []
            model.summary(line_length=76, print_fn=lambda s, line_break=True: lines.append(s))
            print("\n".join("  " + l for l in "\n".join(lines).split("\n")))
        print("  input dtype %s, layers: %s" % (
            dtype, ", ".join("%s(%s)" % (l.name, type(l).__name__) for l in model.layers)))

        try:
            x = np.asarray(ref["input"], dtype=dtype).reshape(ref["input_shape"])
            want = np.asarray(ref["output"], dtype="float64").reshape(ref["output_shape"])
        except Exception as exc:  # noqa: BLE001
            print("  FAIL: bad input/output in %s: %s" % (os.path.basename(jpath), exc))
            failures += 1
            continue
        tol = tol_rel * max(1.0, float(np.nanmax(np.abs(want))) if want.size else 1.0)

        def compare(label, m):
            """Prints one comparison line; returns True when it matches."""
            try:
                got = np.asarray(m.predict(x, verbose=0))
            except Exception as exc:  # noqa: BLE001
                print("  FAIL %-34s predict raised %s: %s" % (label, type(exc).__name__, exc))
                return False
            if got.shape != want.shape:
                print("  FAIL %-34s output shape %s, JSON says %s"
                      % (label, list(got.shape), list(want.shape)))
                return False
            g = got.astype("float64")
            both_nan = np.isnan(g) & np.isnan(want)
            same_inf = np.isinf(g) & (g == want)
            d = np.where(both_nan | same_inf, 0.0, np.abs(g - want))
            d = np.where(np.isnan(d), np.inf, d)
            worst = float(d.max()) if d.size else 0.0
            ok = worst <= tol
            print("  %s %-34s max|diff| %.3e  (tolerance %.3e, output dtype %s)"
                  % ("ok  " if ok else "FAIL", label, worst, tol, got.dtype))
            if not ok and args.verbose:
                for i, (a, b) in enumerate(zip(g.ravel(), want.ravel())):
                    print("      [%d] keras %r  crate %r" % (i, a, b))
            return ok

        def compare_with_sparsemax_fallback(label, m):
            if compare(label, m):
                return True
            if has_sparsemax(m):
                print("       (the model has sparsemax: Keras 3.15's departs from the paper;"
                      " retrying with the paper's)")
                return compare(label + " + paper sparsemax", with_paper_sparsemax(m))
            return False

        wpath = kpath[: -len(".keras")] + ".weights.h5"
        fresh = fresh_error = None
        if os.path.exists(wpath):
            try:
                # Before any sparsemax swap: clone_model goes through the config.
                fresh = keras.models.clone_model(model)
            except Exception as exc:  # noqa: BLE001
                fresh_error = exc

        ok = compare_with_sparsemax_fallback("load_model(.keras)", model)

        if os.path.exists(wpath):
            try:
                if fresh_error is not None:
                    raise fresh_error
                fresh.load_weights(wpath)
                ok = compare_with_sparsemax_fallback("clone_model + load_weights(.weights.h5)",
                                                     fresh) and ok
            except Exception as exc:  # noqa: BLE001
                print("  FAIL clone_model + load_weights(%s) raised %s: %s"
                      % (os.path.basename(wpath), type(exc).__name__, exc))
                ok = False
        if not ok:
            failures += 1

    print()
    print("%d file(s) checked: %d passed, %d failed"
          % (len(pairs), len(pairs) - failures, failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
