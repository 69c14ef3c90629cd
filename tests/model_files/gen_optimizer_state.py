"""Compiled, trained Keras 3 models saved with their optimizer state, for the crate's
model-file tests (`tests/model_files.rs`, `optimizer_state_*`).

For each optimizer: a small Sequential is compiled, trained for 3 steps with
`train_on_batch`, and saved as `opt_<name>.keras` (Keras keeps `compile_config` and
`optimizer/vars`). Then one more `train_on_batch` on the recorded batch gives the
weights `opt_state.json` records: a loader that restores the step count and every
slot in Keras's order takes the same step.

Run from the repository root (same environment as gen_model_files.py):
    /tmp/kvenv/bin/python tests/model_files/gen_optimizer_state.py
"""
import json
import os

os.environ["KERAS_BACKEND"] = "jax"
import keras  # noqa: E402
import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))

OPTIMIZERS = {
    "sgd_momentum": lambda: keras.optimizers.SGD(learning_rate=0.05, momentum=0.9, nesterov=True),
    "adam_amsgrad": lambda: keras.optimizers.Adam(learning_rate=0.01, amsgrad=True),
    "adamw": lambda: keras.optimizers.AdamW(learning_rate=0.01, weight_decay=0.01),
    "rmsprop_centered": lambda: keras.optimizers.RMSprop(learning_rate=0.01, momentum=0.5, centered=True),
    "adagrad": lambda: keras.optimizers.Adagrad(learning_rate=0.05),
}


def main():
    rng = np.random.Generator(np.random.PCG64(20261207))
    x = rng.uniform(-1, 1, (8, 5)).astype("float32")
    y = np.eye(3, dtype="float32")[np.arange(8) % 3]
    cases = []
    for name, make in OPTIMIZERS.items():
        keras.utils.set_random_seed(7)
        m = keras.Sequential([
            keras.Input((5,)),
            keras.layers.Dense(4, activation="tanh"),
            keras.layers.Dense(3, activation="softmax", use_bias=False),
        ])
        m.compile(optimizer=make(), loss="categorical_crossentropy", metrics=["accuracy"])
        for _ in range(3):
            m.train_on_batch(x, y)
        path = "opt_%s.keras" % name
        m.save(os.path.join(HERE, path))
        m.train_on_batch(x, y)
        cases.append({
            "name": name,
            "file": path,
            "iterations_saved": 3,
            "after_one_more_step": [
                {"shape": list(w.shape), "values": [float(v) for v in w.ravel()]}
                for w in m.get_weights()
            ],
        })
    out = {
        "generator": "tests/model_files/gen_optimizer_state.py",
        "keras_version": keras.__version__,
        "x_shape": list(x.shape),
        "x": [float(v) for v in x.ravel()],
        "y_shape": list(y.shape),
        "y": [float(v) for v in y.ravel()],
        "cases": cases,
    }
    with open(os.path.join(HERE, "opt_state.json"), "w") as f:
        json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
