"""Write examples/data/digits.txt from scikit-learn's bundled 8x8 digits data set.

Run from the repository root:

    python3 -m venv /tmp/skvenv && /tmp/skvenv/bin/pip install scikit-learn
    /tmp/skvenv/bin/python examples/data/gen_digits.py

Format: `#` comment lines, then one line per sample in `load_digits()` order:
64 pixel values (row-major 8x8), each one character of "0123456789abcdefg"
(0..16), a space, then the label digit 0..9. The script reads the file back and
asserts it equals `load_digits()` exactly.
"""
import os

import numpy as np
import sklearn
from sklearn.datasets import load_digits

ALPHABET = "0123456789abcdefg"
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "digits.txt")


def read(path):
    xs, ys = [], []
    with open(path) as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            pix, label = line.split()
            assert len(pix) == 64 and len(label) == 1
            xs.append([ALPHABET.index(c) for c in pix])
            ys.append(int(label))
    return np.array(xs, dtype=np.int64), np.array(ys, dtype=np.int64)


def main():
    d = load_digits()
    x, y = d.data, d.target
    assert x.shape == (1797, 64) and y.shape == (1797,)
    xi = x.astype(np.int64)
    assert (xi == x).all() and xi.min() >= 0 and xi.max() <= 16
    header = [
        f"# 8x8 handwritten digits: scikit-learn {sklearn.__version__}, sklearn.datasets.load_digits()",
        "# Licence: the UCI ML \"Optical Recognition of Handwritten Digits\" data set (test part),",
        "# as redistributed by scikit-learn under BSD-3-Clause (sklearn/datasets/data/digits.csv.gz).",
        "# Creators: E. Alpaydin, C. Kaynak (1998).",
        f"# {x.shape[0]} samples, in load_digits() order. Each line: 64 pixel values (8x8, row-major),",
        "# each one character of \"0123456789abcdefg\" (0..16), a space, then the label 0..9.",
        "# Made by examples/data/gen_digits.py.",
    ]
    with open(OUT, "w") as f:
        f.write("\n".join(header) + "\n")
        for row, label in zip(xi, y):
            f.write("".join(ALPHABET[v] for v in row) + " " + str(int(label)) + "\n")
    rx, ry = read(OUT)
    assert np.array_equal(rx, xi) and np.array_equal(ry, y.astype(np.int64))
    print(f"wrote {OUT}: {len(ry)} samples, {os.path.getsize(OUT)} bytes, read back equal")


if __name__ == "__main__":
    main()
