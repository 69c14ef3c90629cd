#!/usr/bin/env python3
"""Model files written by real Keras 3 and PyTorch, for the crate's file loaders.

How to run (from the repository root):

    python3 -m venv /tmp/kvenv
    /tmp/kvenv/bin/pip install keras==3.15.1 "jax[cpu]==0.10.2" numpy h5py safetensors torch
    /tmp/kvenv/bin/python tests/model_files/gen_model_files.py

Writes, into tests/model_files/:

* `<case>.keras`, `<case>.h5` (legacy HDF5 `model.save`) and `<case>.weights.h5`
  (`model.save_weights`) for every Keras case, with the input and `model.predict` output
  recorded in `manifest.json`;
* `.keras` (and `.h5` where Keras saves it) for models the crate must refuse
  (`"kind": "unsupported"`, with strings the error should contain);
* damaged copies of `seed_a.keras` (`"kind": "bad"`), and one with an extra zip entry
  that loading must ignore (`"kind": "keras_extra_entry"`);
* `<case>.safetensors` from PyTorch `nn.Sequential` MLPs (`"kind": "torch"`).

Each group of cases runs in a child process: float32 Keras models in one, float64
Keras models in one with JAX_ENABLE_X64=1 (set before jax is imported), PyTorch in
one. Before every Keras case `keras.backend.clear_session()` resets Keras's name
counters (so names are those a fresh process gives: "sequential", "dense", "dense_1"...)
and `keras.utils.set_random_seed` fixes the weights. Inputs come from
numpy Generator(PCG64(20261207)), 5 rows, uniform in [-2, 2]. Floats are written with
Python's repr of the value (exact for float32 and float64). Summaries are rendered at
line_length=76, which is what Keras picks by itself on an 80-column terminal or when
stdout is not a terminal.

The manifest's numbers are deterministic; the .keras files themselves are not
byte-identical between runs (Keras writes the save date into metadata.json).
"""

import json
import os
import subprocess
import sys
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
MANIFEST = os.path.join(HERE, "manifest.json")
SEED = 20261207
ROWS = 5
SUMMARY_LINE_LENGTH = 76


def rng_for(name):
    """One Generator per case, so adding a case does not change the others' inputs:
    PCG64 seeded with SeedSequence(20261207, spawn_key=<the case name's bytes>)."""
    import numpy as np

    ss = np.random.SeedSequence(SEED, spawn_key=tuple(name.encode()))
    return np.random.Generator(np.random.PCG64(ss))


def make_input(name, shape, dtype):
    x = rng_for(name).uniform(-2.0, 2.0, size=(ROWS,) + tuple(shape))
    return x.astype(dtype)


def floats(a):
    # float() of a numpy float32/float64 scalar is exact; json writes repr of it.
    return [float(v) for v in a.ravel()]


# --------------------------------------------------------------------------- Keras


def keras_child(group):
    os.environ["KERAS_BACKEND"] = "jax"
    if group == "keras64":
        os.environ["JAX_ENABLE_X64"] = "1"
    import warnings

    warnings.simplefilter("ignore")
    import logging

    logging.getLogger("absl").setLevel(logging.ERROR)
    import keras
    import numpy as np
    from keras import layers

    entries = []

    def summary(model):
        lines = []
        model.summary(
            line_length=SUMMARY_LINE_LENGTH,
            print_fn=lambda s, line_break=True: lines.append(s),
        )
        return "\n".join(lines)

    def fresh(seed):
        keras.backend.clear_session()
        keras.utils.set_random_seed(seed)

    def predict(model, x):
        return np.asarray(model.predict(x, verbose=0))

    def save_all(name, model, legacy_h5=True):
        files = {}
        p = os.path.join(HERE, name + ".keras")
        model.save(p)
        files["keras"] = name + ".keras"
        if legacy_h5:
            p = os.path.join(HERE, name + ".h5")
            model.save(p)
            files["h5"] = name + ".h5"
        p = os.path.join(HERE, name + ".weights.h5")
        model.save_weights(p)
        files["weights_h5"] = name + ".weights.h5"
        return files

    def record(name, model, x, dtype, extra=None, legacy_h5=True):
        y = predict(model, x)
        assert y.dtype == np.dtype(dtype), (name, y.dtype, dtype)
        for w in model.weights:
            assert str(w.dtype) == dtype, (name, w.path, w.dtype)
        files = save_all(name, model, legacy_h5)
        # The reloaded model must give the same numbers (catches a save that lost
        # something).
        back = keras.saving.load_model(os.path.join(HERE, files["keras"]))
        y2 = predict(back, x)
        assert np.array_equal(y, y2), name
        e = {
            "name": name,
            "kind": "keras",
            "files": files,
            "dtype": dtype,
            "input_shape": list(x.shape),
            "input": floats(x),
            "output_shape": list(y.shape),
            "output": floats(y),
            "summary": summary(model),
            "summary_line_length": SUMMARY_LINE_LENGTH,
            "count_params": int(model.count_params()),
            "model_name": model.name,
            "model_class": type(model).__name__,
            "layers": [
                {"name": l.name, "class_name": type(l).__name__} for l in model.layers
            ],
        }
        if extra:
            e.update(extra)
        entries.append(e)

    def paper_sparsemax_output(model, x):
        """The model's output with the last layer's sparsemax as its paper defines it
        (Martins & Astudillo 2016), on Keras's own float32 pre-activation."""
        h = x
        for layer in model.layers[:-1]:
            h = layer(h)
        last = model.layers[-1]
        z = np.asarray(keras.ops.add(keras.ops.matmul(h, last.kernel), last.bias))
        zd = z.astype("float64")
        out = np.empty_like(zd)
        support_sizes = []
        for i, row in enumerate(zd):
            s = np.sort(row)[::-1]
            c = np.cumsum(s)
            k = np.arange(1, len(s) + 1)
            supp = s - (c - 1.0) / k > 0
            kk = int(k[supp][-1])
            tau = (c[kk - 1] - 1.0) / kk
            out[i] = np.maximum(row - tau, 0.0)
            support_sizes.append(kk)
        y = out.astype(z.dtype)
        assert np.allclose(y.sum(axis=-1), 1.0, atol=1e-6)
        return {
            "output_paper_sparsemax": floats(y),
            "sparsemax_support_sizes": support_sizes,
            "keras_departure": "Keras 3.15.1's sparsemax (last layer) gives rows that do "
            "not sum to 1 (all zero where the support has 2+ entries); "
            "`output` is Keras's predict, `output_paper_sparsemax` is the paper's "
            "sparsemax of Keras's own float32 pre-activation, rounded to float32 "
            "(what the crate computes)",
        }

    def aliases_case(base):
        """acts_4.keras with "silu"/"hard_silu" in config.json renamed to the aliases
        "swish"/"hard_swish" (as Keras 2 wrote them): Keras 3 loads it the same."""
        src = os.path.join(HERE, base["files"]["keras"])
        with zipfile.ZipFile(src) as z:
            cfg = json.loads(z.read("config.json"))
        renamed = []
        for l in cfg["config"]["layers"]:
            a = l["config"].get("activation")
            if a in ("silu", "hard_silu"):
                l["config"]["activation"] = {"silu": "swish", "hard_silu": "hard_swish"}[a]
                renamed.append([l["config"]["name"], a, l["config"]["activation"]])
        assert len(renamed) == 2, renamed
        dst = os.path.join(HERE, "aliases.keras")
        rewrite_zip(src, dst, replace={"config.json": json.dumps(cfg).encode()})
        back = keras.saving.load_model(dst)
        x = np.array(base["input"], dtype="float32").reshape(base["input_shape"])
        y = predict(back, x)
        assert floats(y) == base["output"]
        e = {k: v for k, v in base.items() if k not in ("files", "summary")}
        e.update(
            {
                "name": "aliases",
                "files": {"keras": "aliases.keras"},
                "what": "acts_4.keras with config.json edited: the activations Keras 3 "
                "wrote as silu and hard_silu renamed to their aliases swish and "
                "hard_swish (Keras 3 loads it and predicts the same)",
                "renamed": renamed,
                "summary": summary(back),
            }
        )
        entries.append(e)

    if group == "keras32":
        # 1. seed_a: the tutorial's Sequential model.
        fresh(101)
        model = keras.Sequential(
            [
                keras.Input((4,)),
                layers.Dense(7),
                layers.Activation("sigmoid"),
                layers.Dense(13),
                layers.Activation("sigmoid"),
                layers.Dense(5),
                layers.Activation("softmax"),
            ]
        )
        record("seed_a", model, make_input("seed_a", (4,), "float32"), "float32")

        # 2. seed_b: the tutorial's functional model (softmax over one unit: all ones).
        fresh(102)
        inp = keras.Input((5,))
        out = layers.Dense(1, activation="softmax")(inp)
        model = keras.Model(inp, out)
        record("seed_b", model, make_input("seed_b", (5,), "float32"), "float32")

        # 3. acts_1..acts_4: every activation name (and the aliases swish, hard_swish).
        acts = {
            "acts_1": ["linear", "relu", "relu6", "leaky_relu", "elu", "selu", "celu", "gelu"],
            "acts_2": ["sigmoid", "hard_sigmoid", "silu", "hard_silu", "tanh", "softplus",
                       "softsign", "mish"],
            # exponential last, after hard_tanh (bounded input to its Dense).
            "acts_3": ["log_sigmoid", "tanh_shrink", "squareplus", "sparse_plus",
                       "soft_shrink", "hard_tanh", "exponential"],
            # sparsemax last: Keras 3.15's sparsemax is not the paper's (its threshold
            # sums the cumulative sums, so rows whose support has 2+ entries come out
            # all zero); the crate follows the paper, so the case also records
            # `output_paper_sparsemax`. swish and hard_swish are accepted as strings
            # but saved as "silu" and "hard_silu" (see the `aliases` case).
            "acts_4": ["hard_shrink", "sparse_sigmoid", "softmax", "log_softmax",
                       "swish", "hard_swish", "sparsemax"],
        }
        for i, (name, names) in enumerate(acts.items()):
            fresh(110 + i)
            model = keras.Sequential(
                [keras.Input((6,))]
                + [
                    layers.Dense(
                        6,
                        activation=a,
                        # Small weights before sparsemax so that its rows have
                        # supports of 2+ entries (where Keras departs from the paper).
                        kernel_initializer=keras.initializers.RandomUniform(
                            -0.25 if a == "sparsemax" else -1.0,
                            0.25 if a == "sparsemax" else 1.0),
                        bias_initializer=keras.initializers.RandomUniform(-0.5, 0.5),
                    )
                    for a in names
                ]
            )
            x = make_input(name, (6,), "float32")
            extra = {"activations": names}
            if names[-1] == "sparsemax":
                extra.update(paper_sparsemax_output(model, x))
            record(name, model, x, "float32", extra)
            if name == "acts_4":
                aliases_case(entries[-1])

        # 4. no_bias
        fresh(120)
        model = keras.Sequential(
            [
                keras.Input((5,)),
                layers.Dense(4, use_bias=False, activation="relu"),
                layers.Dense(3, use_bias=False),
            ]
        )
        record("no_bias", model, make_input("no_bias", (5,), "float32"), "float32")

        # 6. flatten_dropout
        fresh(130)
        model = keras.Sequential(
            [
                keras.Input((2, 3, 4)),
                layers.Flatten(),
                layers.Dense(8, "relu"),
                layers.Dropout(0.3),
                layers.Dense(2),
            ]
        )
        record("flatten_dropout", model, make_input("flatten_dropout", (2, 3, 4), "float32"),
               "float32")

        # 7. reg_con: regularizers and constraints (no effect on inference).
        fresh(140)
        model = keras.Sequential(
            [
                keras.Input((6,)),
                layers.Dense(
                    5,
                    activation="elu",
                    kernel_initializer="he_normal",
                    bias_initializer="ones",
                    kernel_regularizer=keras.regularizers.L1L2(l1=0.01, l2=0.02),
                    bias_regularizer=keras.regularizers.L2(0.03),
                    activity_regularizer=keras.regularizers.L1(0.001),
                    kernel_constraint=keras.constraints.MaxNorm(2.0, axis=0),
                    bias_constraint=keras.constraints.NonNeg(),
                ),
                layers.Dense(
                    3,
                    kernel_constraint=keras.constraints.UnitNorm(axis=0),
                    bias_constraint=keras.constraints.MinMaxNorm(0.0, 1.0, rate=1.0, axis=0),
                    kernel_regularizer=keras.regularizers.L2(0.001),
                ),
            ]
        )
        record("reg_con", model, make_input("reg_con", (6,), "float32"), "float32")

        # 8. functional_chain
        fresh(150)
        inp = keras.Input((7,))
        x = layers.Dense(9, name="hidden")(inp)
        x = layers.Activation("relu", name="act")(x)
        x = layers.Dropout(0.1)(x)
        out = layers.Dense(4, activation="softmax", name="probs")(x)
        model = keras.Model(inp, out, name="chain")
        record("functional_chain", model, make_input("functional_chain", (7,), "float32"),
               "float32")

        # 9. named
        fresh(160)
        model = keras.Sequential(
            [
                keras.Input((4,)),
                layers.Dense(5, activation="relu", name="first"),
                layers.Dense(3, activation="tanh", name="second"),
                layers.Dense(2),
            ],
            name="my_model",
        )
        record("named", model, make_input("named", (4,), "float32"), "float32")

        # 10. no_input: input_shape on the first layer (Keras 3 accepts it, with a warning).
        fresh(170)
        model = keras.Sequential(
            [layers.Dense(4, input_shape=(3,), activation="relu"), layers.Dense(2)]
        )
        record("no_input", model, make_input("no_input", (3,), "float32"), "float32")

        # many_layers: 12 Dense layers. In .keras / .weights.h5 their weight groups are
        # layers/dense, layers/dense_1, ..., layers/dense_11 (named by class and
        # position, not by layer name), and HDF5 lists groups by name, so dense_10 and
        # dense_11 come before dense_2. No legacy .h5 (it keys groups by layer name).
        fresh(175)
        model = keras.Sequential(
            [keras.Input((3,))]
            + [layers.Dense(3, activation="tanh", name="layer_%02d" % i) for i in range(12)]
        )
        record("many_layers", model, make_input("many_layers", (3,), "float32"), "float32",
               legacy_h5=False)

        # ---------------------------------------------------------- unsupported
        def unsupported(name, model, contains, what):
            files = {}
            model.save(os.path.join(HERE, name + ".keras"))
            files["keras"] = name + ".keras"
            try:
                model.save(os.path.join(HERE, name + ".h5"))
                files["h5"] = name + ".h5"
            except Exception as exc:  # noqa: BLE001
                h5_error = "%s: %s" % (type(exc).__name__, exc)
            else:
                h5_error = None
            entries.append(
                {
                    "name": name,
                    "kind": "unsupported",
                    "files": files,
                    **({"h5_save_error": h5_error} if h5_error else {}),
                    "what": what,
                    "expect_error_contains": contains,
                    "model_name": model.name,
                    "layers": [
                        {"name": l.name, "class_name": type(l).__name__}
                        for l in model.layers
                    ],
                    "weights": [
                        {"path": w.path, "dtype": str(w.dtype), "shape": list(w.shape)}
                        for w in model.weights
                    ],
                }
            )

        fresh(200)
        model = keras.Sequential(
            [keras.Input((8, 1)), layers.Conv1D(2, 3), layers.Flatten(), layers.Dense(2)]
        )
        unsupported("conv", model, ["conv1d", "Conv1D"], "a Conv1D layer")

        fresh(201)
        inp = keras.Input((4,))
        a = layers.Dense(3)(inp)
        b = layers.Dense(3)(inp)
        out = layers.Add()([a, b])
        model = keras.Model(inp, out)
        unsupported("branching", model, ["add", "Add"],
                    "a functional graph with two branches joined by an Add layer")

        fresh(202)
        model = keras.Sequential([keras.Input((4,)), layers.Dense(3, dtype="bfloat16")])
        unsupported("bf16", model, ["dense", "bfloat16"],
                    "a Dense layer with dtype policy bfloat16 (bfloat16 weights)")

        fresh(203)
        model = keras.Sequential([keras.Input((4,)), layers.Dense(3)])
        model.quantize("int8")
        unsupported("int8", model, ["dense", "int8"],
                    "a Dense layer quantized with model.quantize('int8')")

        fresh(204)
        model = keras.Sequential([keras.Input((4,)), layers.Dense(3, dtype="mixed_float16")])
        unsupported("mixed", model, ["dense", "mixed_float16"],
                    "a Dense layer with dtype policy mixed_float16 "
                    "(float32 weights, float16 compute)")

    elif group == "keras64":
        # 5. f64
        fresh(180)
        model = keras.Sequential(
            [
                keras.Input((5,), dtype="float64"),
                layers.Dense(6, "tanh", dtype="float64"),
                layers.Dense(2, dtype="float64"),
            ]
        )
        x = make_input("f64", (5,), "float64")
        # Keras 3.15 (JAX) computes tanh of a float64 Dense in float32
        # (keras.ops.tanh casts through result_type), so `output` is only float32-accurate;
        # `output_f64_reference` is the same model in numpy float64 from its weights.
        w0, b0, w1, b1 = [np.asarray(w, dtype="float64") for w in model.get_weights()]
        ref = np.tanh(x @ w0 + b0) @ w1 + b1
        record("f64", model, x, "float64", {
            "output_f64_reference": floats(ref),
            "keras_departure": "Keras 3.15.1 on JAX evaluates the float64 Dense's tanh in "
            "float32 (result_type maps float64 to float32), so `output` differs from "
            "float64 arithmetic by ~1e-7; `output_f64_reference` is numpy float64 "
            "(tanh(x @ W0 + b0) @ W1 + b1 from the stored weights)",
        })

    import inspect

    gelu_default = inspect.signature(keras.activations.gelu).parameters["approximate"].default
    return {"keras_version": keras.__version__, "entries": entries,
            "gelu_default_approximate": gelu_default}


# --------------------------------------------------------------------------- PyTorch


def torch_child():
    import numpy as np
    import torch
    from safetensors.torch import save_file
    from torch import nn

    entries = []

    def record(name, model, acts, dtype, in_features, seed, extra=None):
        x = make_input(name, (in_features,), dtype)
        with torch.no_grad():
            y = model(torch.from_numpy(x)).numpy()
        assert y.dtype == np.dtype(dtype)
        path = name + ".safetensors"
        sd = model.state_dict()
        save_file(sd, os.path.join(HERE, path))
        os.chmod(os.path.join(HERE, path), 0o644)  # safetensors writes 0600
        e = {
            "name": name,
            "kind": "torch",
            "files": {"safetensors": path},
            "dtype": dtype,
            "torch_seed": seed,
            "activations": acts,
            "module": repr(model),
            "tensors": [
                {"name": k, "shape": list(v.shape), "dtype": str(v.dtype).replace("torch.", "")}
                for k, v in sd.items()
            ],
            "input_shape": list(x.shape),
            "input": floats(x),
            "output_shape": list(y.shape),
            "output": floats(y),
        }
        if extra:
            e.update(extra)
        entries.append(e)

    torch.manual_seed(301)
    m = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4), nn.Softmax(dim=-1))
    record("torch_mlp", m, ["relu", "softmax"], "float32", 8, 301)

    torch.manual_seed(302)
    m = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 4)).double()
    record("torch_f64", m, ["tanh", "linear"], "float64", 8, 302)

    torch.manual_seed(303)
    m = nn.Sequential(nn.Linear(6, 5, bias=False), nn.GELU(), nn.Linear(5, 3))
    record(
        "torch_nobias",
        m,
        ["gelu", "linear"],
        "float32",
        6,
        303,
        {
            "note": "nn.GELU() defaults to approximate='none' (the exact erf form), which "
            "is Keras's 'gelu' activation string: keras.activations.gelu(x, "
            "approximate=False) by default"
        },
    )

    torch.manual_seed(304)
    m = nn.Sequential(
        nn.Linear(10, 12), nn.Sigmoid(), nn.Linear(12, 12), nn.SiLU(),
        nn.Linear(12, 6), nn.Tanh(), nn.Linear(6, 2),
    )
    record("torch_deep", m, ["sigmoid", "silu", "tanh", "linear"], "float32", 10, 304)

    # torch_long: 11 modules, so the Linear layers are 0, 2, ..., 10; safetensors sorts
    # its header by name ("10.weight" before "2.weight"): order them by the number.
    torch.manual_seed(305)
    mods = []
    for i in range(6):
        mods.append(nn.Linear(4, 4))
        if i < 5:
            mods.append(nn.ReLU())
    m = nn.Sequential(*mods)
    record("torch_long", m, ["relu"] * 5 + ["linear"], "float32", 4, 305)

    return {"torch_version": torch.__version__, "entries": entries}


# --------------------------------------------------------------------------- bad files


def rewrite_zip(src, dst, replace=None, add=None, drop=()):
    """Copy the zip `src` to `dst`, replacing or adding entries (name -> bytes)."""
    replace = replace or {}
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            if info.filename in drop:
                continue
            data = replace.get(info.filename, zin.read(info.filename))
            zout.writestr(info, data)
        for name, data in (add or {}).items():
            zout.writestr(zipfile.ZipInfo(name, date_time=(2026, 12, 7, 0, 0, 0)), data)


def bad_files(seed_a):
    src = os.path.join(HERE, "seed_a.keras")
    with open(src, "rb") as f:
        data = f.read()
    entries = []

    def bad(name, what, **kw):
        e = {"name": name, "kind": "bad", "files": {"keras": name + ".keras"}, "what": what}
        e.update(kw)
        entries.append(e)

    with open(os.path.join(HERE, "trunc.keras"), "wb") as f:
        f.write(data[: len(data) // 2])
    bad("trunc", "seed_a.keras truncated to its first half")

    with open(os.path.join(HERE, "magic.keras"), "wb") as f:
        f.write(b"XXXX" + data[4:])
    bad("magic", "seed_a.keras with its first 4 bytes (the zip signature) replaced by XXXX")

    with zipfile.ZipFile(src) as z:
        cfg = json.loads(z.read("config.json"))
    first = next(l for l in cfg["config"]["layers"] if l["class_name"] == "Dense")
    assert first["config"]["units"] == 7
    first["config"]["units"] = 8
    rewrite_zip(src, os.path.join(HERE, "mismatch.keras"),
                replace={"config.json": json.dumps(cfg).encode()})
    bad("mismatch", "seed_a.keras whose config.json says the first Dense has units=8 "
        "while its stored kernel is (4, 7) and bias (7,)",
        expect_error_contains=[first["config"]["name"]])

    rewrite_zip(src, os.path.join(HERE, "noweights.keras"), drop=("model.weights.h5",))
    bad("noweights", "seed_a.keras without its model.weights.h5 entry")

    with open(os.path.join(HERE, "notzip.keras"), "wb") as f:
        f.write(b"this is not a zip archive\n")
    bad("notzip", "a text file named .keras")

    # A configuration that declares far more parameters than the file holds (a loader
    # must refuse it before allocating 2**40 floats).
    huge = json.loads(json.dumps(cfg))
    hfirst = next(l for l in huge["config"]["layers"] if l["class_name"] == "Dense")
    hfirst["config"]["units"] = 2 ** 40
    rewrite_zip(src, os.path.join(HERE, "huge.keras"),
                replace={"config.json": json.dumps(huge).encode()})
    bad("huge", "seed_a.keras whose config.json says the first Dense has units=2**40")

    # A zip bomb: model.weights.h5 replaced by 64 MiB of zeros, deflated (~64 KiB).
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(
            os.path.join(HERE, "bomb.keras"), "w") as zout:
        for info in zin.infolist():
            if info.filename == "model.weights.h5":
                zi = zipfile.ZipInfo("model.weights.h5", date_time=(2026, 12, 7, 0, 0, 0))
                zi.compress_type = zipfile.ZIP_DEFLATED
                zout.writestr(zi, bytes(64 << 20))
            else:
                zout.writestr(info, zin.read(info.filename))
    bad("bomb", "seed_a.keras whose model.weights.h5 is 64 MiB of zeros, deflated")

    rewrite_zip(src, os.path.join(HERE, "pathtrick.keras"),
                add={"../evil.txt": b"an entry whose name climbs out of the archive\n"})
    with zipfile.ZipFile(os.path.join(HERE, "pathtrick.keras")) as z:
        assert "../evil.txt" in z.namelist(), z.namelist()
    e = dict(seed_a)
    e.update(
        {
            "name": "pathtrick",
            "kind": "keras_extra_entry",
            "files": {"keras": "pathtrick.keras"},
            "what": "seed_a.keras with an extra entry named ../evil.txt; extra entries "
            "are ignored, so it loads as seed_a (same input and output)",
        }
    )
    entries.append(e)
    return entries


def check_bad_with_keras(entries, out):
    """Record what Keras itself says for each bad file (in a child process)."""
    os.environ["KERAS_BACKEND"] = "jax"
    import warnings

    warnings.simplefilter("ignore")
    import keras
    import numpy as np

    res = {}
    for e in entries:
        p = os.path.join(HERE, e["files"]["keras"])
        try:
            m = keras.saving.load_model(p)
            if e["kind"] == "keras_extra_entry":
                x = np.array(e["input"], dtype="float32").reshape(e["input_shape"])
                y = np.asarray(m.predict(x, verbose=0))
                ok = np.array_equal(y.ravel(), np.array(e["output"], dtype="float32"))
                res[e["name"]] = "loads; output equal to seed_a: %s" % ok
            else:
                res[e["name"]] = "loads"
        except Exception as exc:  # noqa: BLE001
            msg = str(exc).replace(HERE + os.sep, "").strip().splitlines()
            res[e["name"]] = "%s: %s" % (type(exc).__name__, msg[0][:300] if msg else "")
    with open(out, "w") as f:
        json.dump(res, f)


# --------------------------------------------------------------------------- main


def run_child(group, env_extra=None):
    out = os.path.join(HERE, ".%s.tmp.json" % group)
    env = dict(os.environ)
    env.pop("JAX_ENABLE_X64", None)
    env["KERAS_BACKEND"] = "jax"
    env["COLUMNS"] = "80"
    env.update(env_extra or {})
    subprocess.run([sys.executable, os.path.abspath(__file__), "--child", group, out],
                   check=True, env=env)
    with open(out) as f:
        data = json.load(f)
    os.remove(out)
    return data


def main():
    if len(sys.argv) >= 2 and sys.argv[1] == "--child":
        group, out = sys.argv[2], sys.argv[3]
        if group == "torch":
            data = torch_child()
        elif group == "badcheck":
            with open(out) as f:
                ents = json.load(f)
            check_bad_with_keras(ents, out)
            return
        else:
            data = keras_child(group)
        with open(out, "w") as f:
            json.dump(data, f)
        return

    k32 = run_child("keras32")
    k64 = run_child("keras64")
    assert k32["keras_version"] == k64["keras_version"]
    tch = run_child("torch")

    seed_a = next(e for e in k32["entries"] if e["name"] == "seed_a")
    bads = bad_files(seed_a)

    tmp = os.path.join(HERE, ".badcheck.tmp.json")
    with open(tmp, "w") as f:
        json.dump(bads, f)
    env = dict(os.environ, KERAS_BACKEND="jax")
    env.pop("JAX_ENABLE_X64", None)
    subprocess.run([sys.executable, os.path.abspath(__file__), "--child", "badcheck", tmp],
                   check=True, env=env)
    with open(tmp) as f:
        keras_says = json.load(f)
    os.remove(tmp)
    for e in bads:
        e["keras_load_result"] = keras_says[e["name"]]

    import numpy
    import h5py
    import safetensors

    entries = k32["entries"] + k64["entries"] + bads + tch["entries"]
    # Order: keras cases (f32, then f64 after no_bias), unsupported, bad, torch.
    order = {"keras": 0, "unsupported": 1, "bad": 2, "keras_extra_entry": 2, "torch": 3}
    entries.sort(key=lambda e: order[e["kind"]])
    manifest = {
        "generator": "tests/model_files/gen_model_files.py",
        "keras_version": k32["keras_version"],
        "keras_backend": "jax",
        "torch_version": tch["torch_version"],
        "numpy_version": numpy.__version__,
        "h5py_version": h5py.__version__,
        "safetensors_version": safetensors.__version__,
        "input_seed": SEED,
        "input_rows": ROWS,
        "input_range": [-2.0, 2.0],
        "keras_gelu_default_approximate": k32["gelu_default_approximate"],
        "cases": entries,
    }
    with open(MANIFEST, "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")
    print("wrote %d cases to %s" % (len(entries), MANIFEST))


if __name__ == "__main__":
    main()
