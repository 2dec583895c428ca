// How many threads one rank computes with: the worker pool's, which share every kernel, sgemms
// included (each thread calls a single-threaded sgemm on its rows; see Kernels/Matmul.swift). Set
// once at start-up: with several ranks on one node, ranks x threads must not exceed the cores.

import CBLAS

public enum ComputeThreads {
  public static func set(_ count: Int) {
    // Every new pool makes OpenBLAS single-threaded, but resizing to the same size makes no pool,
    // and a caller may have changed it since (attn-bench does, for its reference sgemm rate).
    openblas_set_num_threads(1)
    WorkerPool.resize(max(1, count))
  }

  public static var current: Int { WorkerPool.shared.threads }
}
