// The number of threads OpenBLAS uses inside each sgemm. Set once at start-up: with several ranks on
// one node, ranks x threads must not exceed the cores (oversubscribed ranks are not bound to cores
// and OpenBLAS would otherwise start one thread per core in every rank).

import CBLAS

public enum BLASThreads {
  public static func set(_ count: Int) { openblas_set_num_threads(Int32(max(1, count))) }
  public static var current: Int { Int(openblas_get_num_threads()) }
}
