// How many threads one rank computes with: OpenBLAS's threads inside each sgemm, and the worker
// pool's threads for everything between sgemms. Set once at start-up: with several ranks on one
// node, ranks x threads must not exceed the cores (oversubscribed ranks are not bound to cores and
// OpenBLAS would otherwise start one thread per core in every rank).

import CBLAS

public enum ComputeThreads {
  public static func set(_ count: Int) {
    openblas_set_num_threads(Int32(max(1, count)))
    WorkerPool.resize(max(1, count))
  }

  public static var current: Int { Int(openblas_get_num_threads()) }
}
