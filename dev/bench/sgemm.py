#!/usr/bin/env python3
"""cblas_sgemm GFLOP/s of the OpenBLAS that attn-train links, called through ctypes (no numpy).

    python3 dev/bench/sgemm.py --threads N [--lib PATH] [--square 2048] [--shape M,N,K[,AB[,COUNT]]]... [--json OUT]

The library is the libopenblas that `ldd .build/release/attn-train` names (else the system's
libopenblas.so.0); openblas_set_num_threads(N) sets its threads (OPENBLAS_NUM_THREADS is set too when
compare.py runs this). Reported:
- square: C = A B at n x n x n, row-major, best of 5 timed calls after one untimed call;
- shapes (optional): each M x N x K product, row-major, AB = nn/nt/tn/tt saying whether A and B are
  used transposed (default nt, as in the forward `x @ W^T` of a linear layer), best of at least 3 calls
  (2 when one call takes over 0.25 s) and 0.3 s, after one untimed call; `shapes_gflops` is their
  combined rate, total FLOPs / total best time, each shape counted COUNT times (default 1).
The inputs are small constants: sgemm's speed does not depend on the values (no NaN or subnormals).
"""

import argparse
import ctypes
import ctypes.util
import json
import os
import subprocess
import sys
import time

ROW_MAJOR, NO_TRANS, TRANS = 101, 111, 112


def find_openblas(binary):
    if binary and os.path.exists(binary):
        try:
            out = subprocess.run(["ldd", binary], capture_output=True, text=True, timeout=30).stdout
            for line in out.splitlines():
                if "openblas" in line and "=>" in line:
                    path = line.split("=>")[1].split("(")[0].strip()
                    if path:
                        return path
        except (OSError, subprocess.TimeoutExpired):
            pass
    return ctypes.util.find_library("openblas") or "libopenblas.so.0"


def load(path, threads):
    lib = ctypes.CDLL(path)
    lib.openblas_set_num_threads.argtypes = [ctypes.c_int]
    lib.openblas_set_num_threads(threads)
    lib.openblas_get_config.restype = ctypes.c_char_p
    f, i, p = ctypes.c_float, ctypes.c_int, ctypes.c_void_p
    lib.cblas_sgemm.argtypes = [i, i, i, i, i, i, f, p, i, p, i, f, p, i]
    lib.cblas_sgemm.restype = None
    return lib


def buffer(count, value):
    array = (ctypes.c_float * count)()
    ctypes.memset(array, 0, ctypes.sizeof(array))
    for i in range(0, count, max(1, count // 64)):  # a few nonzeros; the rest zero is fine for speed
        array[i] = value
    return array


def timed(lib, m, n, k, trans_a, trans_b, a, b, c, calls, min_seconds):
    lda = m if trans_a else k
    ldb = k if trans_b else n
    best, total, done = float("inf"), 0.0, 0
    while done < calls or total < min_seconds:
        t0 = time.perf_counter()
        lib.cblas_sgemm(ROW_MAJOR, TRANS if trans_a else NO_TRANS, TRANS if trans_b else NO_TRANS,
                        m, n, k, 1.0, a, lda, b, ldb, 0.0, c, n)
        seconds = time.perf_counter() - t0
        best, total, done = min(best, seconds), total + seconds, done + 1
        if done >= 50 or (done >= 2 and best > 0.25):
            break
    return best


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--lib", help="libopenblas to load (default: the one attn-train links)")
    parser.add_argument("--binary", default=os.path.join(os.path.dirname(__file__), "../../.build/release/attn-train"))
    parser.add_argument("--square", type=int, default=2048)
    parser.add_argument("--shape", action="append", default=[], help="M,N,K[,t]: B transposed if t (default t)")
    parser.add_argument("--json")
    args = parser.parse_args()

    path = args.lib or find_openblas(os.path.normpath(args.binary))
    lib = load(path, args.threads)
    n = args.square
    a, b, c = buffer(n * n, 0.01), buffer(n * n, 0.02), buffer(n * n, 0)
    timed(lib, n, n, n, False, False, a, b, c, 1, 0.0)  # warm-up
    square = 2.0 * n ** 3 / timed(lib, n, n, n, False, False, a, b, c, 5, 0.0) / 1e9
    del a, b, c

    shapes, flops, seconds = [], 0.0, 0.0
    for spec in args.shape:
        parts = spec.split(",")
        m, nn, k = (int(x) for x in parts[:3])
        layout = parts[3] if len(parts) > 3 else "nt"
        count = int(parts[4]) if len(parts) > 4 else 1
        if layout not in ("nn", "nt", "tn", "tt") or min(m, nn, k, count) < 1:
            raise SystemExit(f"sgemm.py: bad --shape {spec}")
        trans_a, trans_b = layout[0] == "t", layout[1] == "t"
        a, b, c = buffer(m * k, 0.01), buffer(nn * k, 0.02), buffer(m * nn, 0)
        timed(lib, m, nn, k, trans_a, trans_b, a, b, c, 1, 0.0)  # warm-up
        best = timed(lib, m, nn, k, trans_a, trans_b, a, b, c, 3, 0.3)
        f = 2.0 * m * nn * k
        shapes.append({"m": m, "n": nn, "k": k, "layout": layout, "count": count, "gflops": f / best / 1e9})
        flops, seconds = flops + f * count, seconds + best * count
        del a, b, c

    result = {
        "threads": args.threads, "library": os.path.realpath(path),
        "config": lib.openblas_get_config().decode(errors="replace").strip(),
        "square_n": n, "square_gflops": square, "shapes": shapes,
        "shapes_gflops": flops / seconds / 1e9 if shapes else None,
    }
    text = json.dumps(result)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")
    print(text)


if __name__ == "__main__":
    sys.exit(main())
