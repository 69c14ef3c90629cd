#!/usr/bin/env python3
"""Keras 3 fixtures for the crate's `layer` module: the seed tutorial's two models,
regularizer penalties and constraint projections, all computed by real Keras.

How to run (from the repository root), with the same environment as gen_fixtures.py:

    python3 -m venv /tmp/kvenv
    /tmp/kvenv/bin/pip install keras==3.15.1 "jax[cpu]==0.10.2" numpy mpmath
    /tmp/kvenv/bin/python tests/keras/gen_layer_fixtures.py

Writes tests/keras/layer_fixtures.json. Each model is built in a fresh child process
(Keras numbers layer and model names with process-wide counters, so a fresh process
gives the names a new user sees: "sequential", "dense", "dense_1", ...). Weights come
from Keras's own initializers with fixed seeds; inputs from a seeded numpy Generator.
All floats are written with Python's repr (exact for float32 and float64 values).
Summaries are rendered at line_length=76 (what Keras picks on an 80-column terminal).
"""

import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "layer_fixtures.json")


def child(which):
    os.environ["KERAS_BACKEND"] = "jax"
    import warnings

    warnings.simplefilter("ignore")
    import keras
    import numpy as np
    from keras import layers

    rng = np.random.default_rng(20261201)
    lines = []

    def summary(model):
        lines.clear()
        model.summary(line_length=76, print_fn=lambda s, line_break=True: lines.append(s))
        return "\n".join(lines)

    def weights(model):
        out = []
        for layer in model.layers:
            for v, w in zip(layer.weights, layer.get_weights()):
                out.append(
                    {
                        "layer": layer.name,
                        "name": v.name,
                        "shape": list(w.shape),
                        "values": [float(x) for x in w.ravel()],
                    }
                )
        return out

    def export(model, x, y):
        return {
            "summary": summary(model),
            "count_params": int(model.count_params()),
            "layer_names": [l.name for l in model.layers],
            "weights": weights(model),
            "input_shape": list(x.shape),
            "input": [float(v) for v in x.ravel()],
            "output_shape": list(y.shape),
            "output": [float(v) for v in y.ravel()],
        }

    if which == "seed_sequential":
        # The tutorial's first model, exactly as written there (input_shape on the first
        # layer, which Keras 3 accepts with a warning).
        init = keras.initializers.GlorotUniform(seed=7)
        model = keras.Sequential(
            [
                layers.Dense(7, input_shape=(4,), kernel_initializer=init),
                layers.Activation("sigmoid"),
                layers.Dense(13, kernel_initializer=keras.initializers.GlorotUniform(seed=8),
                             bias_initializer=keras.initializers.RandomNormal(seed=9)),
                layers.Activation("sigmoid"),
                layers.Dense(5, kernel_initializer=keras.initializers.GlorotUniform(seed=10),
                             bias_initializer=keras.initializers.RandomNormal(seed=11)),
                layers.Activation("softmax"),
            ]
        )
        x = rng.normal(size=(6, 4)).astype("float32") * 2.0
        y = np.asarray(model(x))
        return export(model, x, y)

    if which == "seed_functional":
        inp = keras.Input((5,))
        out = layers.Dense(1, activation="softmax",
                           kernel_initializer=keras.initializers.GlorotUniform(seed=3))(inp)
        model = keras.Model(inp, out)
        x = rng.normal(size=(4, 5)).astype("float32")
        y = np.asarray(model(x))
        return export(model, x, y)

    if which == "rank3":
        # Dense on the last axis of a rank-3 input, without a bias, and its summary.
        model = keras.Sequential(
            [layers.Dense(7, input_shape=(3, 4), use_bias=False, name="proj",
                          kernel_initializer=keras.initializers.GlorotUniform(seed=5))]
        )
        x = rng.normal(size=(2, 3, 4)).astype("float32")
        y = np.asarray(model(x))
        return export(model, x, y)

    if which == "penalties":
        # Kernel, bias and activity regularizers on one layer called on a rank-3 input
        # (Keras divides the activity penalty by the first axis, the batch size).
        layer = layers.Dense(
            3,
            kernel_regularizer=keras.regularizers.L1L2(l1=0.01, l2=0.02),
            bias_regularizer=keras.regularizers.L2(0.05),
            activity_regularizer=keras.regularizers.L1(0.1),
            kernel_initializer=keras.initializers.GlorotUniform(seed=12),
            bias_initializer=keras.initializers.RandomUniform(-1.0, 1.0, seed=13),
        )
        x = rng.normal(size=(2, 5, 4)).astype("float32")
        y = np.asarray(layer(x))
        kernel, bias = layer.get_weights()
        losses = [float(v) for v in layer.losses]
        return {
            "kernel": [float(v) for v in kernel.ravel()],
            "bias": [float(v) for v in bias.ravel()],
            "input_shape": list(x.shape),
            "input": [float(v) for v in x.ravel()],
            "output": [float(v) for v in y.ravel()],
            # Keras's order: kernel, bias, activity.
            "losses": losses,
            "named": {
                n: keras.regularizers.get(n).get_config() for n in ("l1", "l2", "l1l2")
            },
        }

    if which == "constraints":
        w = (rng.normal(size=(4, 3)) * 1.5).astype("float32")
        w[1, 2] = -0.0
        b = (rng.normal(size=(3,)) * 2.0).astype("float32")
        cases = []
        for name, c in [
            ("max_norm", keras.constraints.MaxNorm()),
            ("max_norm_1_axis1", keras.constraints.MaxNorm(max_value=1.0, axis=1)),
            ("min_max_norm", keras.constraints.MinMaxNorm()),
            ("min_max_norm_custom", keras.constraints.MinMaxNorm(0.5, 1.5, rate=0.7)),
            ("non_neg", keras.constraints.NonNeg()),
            ("unit_norm", keras.constraints.UnitNorm()),
            ("unit_norm_axis1", keras.constraints.UnitNorm(axis=1)),
        ]:
            cases.append(
                {
                    "name": name,
                    "config": c.get_config(),
                    "kernel": [float(v) for v in np.asarray(c(w)).ravel()],
                    "bias": [float(v) for v in np.asarray(c(b)).ravel()] if "axis1" not in name else None,
                }
            )
        return {
            "kernel_shape": list(w.shape),
            "kernel": [float(v) for v in w.ravel()],
            "bias": [float(v) for v in b.ravel()],
            "cases": cases,
        }

    raise SystemExit(f"unknown fixture {which}")


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        print(json.dumps(child(sys.argv[2])))
        return
    os.environ["KERAS_BACKEND"] = "jax"
    import keras

    out = {"keras_version": keras.__version__, "backend": "jax"}
    for which in ("seed_sequential", "seed_functional", "rank3", "penalties", "constraints"):
        r = subprocess.run(
            [sys.executable, __file__, "--child", which],
            check=True,
            capture_output=True,
            text=True,
            env=dict(os.environ, KERAS_BACKEND="jax"),
        )
        out[which] = json.loads(r.stdout.strip().splitlines()[-1])
    with open(OUT, "w") as f:
        json.dump(out, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
