// Threads for the work between the sgemms (attention per batch and head, GELU, LayerNorm, softmax,
// the optimizer): OpenBLAS parallelises inside each sgemm, but with 2 threads and everything else on
// one, the elementwise and attention passes capped the step (Amdahl). The pool's threads start once
// and wait on semaphores; dispatching a job allocates nothing. Inside a job every sgemm must run on
// one BLAS thread, so `parallelFor` switches OpenBLAS to 1 thread for its duration.

import CBLAS
import Dispatch

#if canImport(Glibc)
  import Glibc
#else
  import Darwin
#endif

public final class WorkerPool: @unchecked Sendable {
  /// The pool a model built now will use; resized by ComputeThreads.set. A model keeps the pool it
  /// was built with (its scratch buffers are sized for it), so resizing never races a running model.
  nonisolated(unsafe) public private(set) static var shared = WorkerPool.serial
  /// One thread, no workers: what the kernel tests use.
  public static let serial = WorkerPool(threads: 1)

  public let threads: Int
  private var job: ((Int) -> Void)?
  private let wake: [DispatchSemaphore]
  private let finished = DispatchSemaphore(value: 0)

  init(threads: Int) {
    self.threads = max(1, threads)
    wake = (1..<max(1, threads)).map { _ in DispatchSemaphore(value: 0) }
    for worker in 1..<self.threads {
      let context = Unmanaged.passRetained(WorkerStart(pool: self, index: worker)).toOpaque()
      var thread = pthread_t()
      let status = pthread_create(&thread, nil, { raw in
        let start = Unmanaged<WorkerStart>.fromOpaque(raw!).takeRetainedValue()
        start.pool.serve(start.index)
        return nil
      }, context)
      precondition(status == 0, "pthread_create failed: \(status)")
      pthread_detach(thread)
    }
  }

  private final class WorkerStart {
    let pool: WorkerPool
    let index: Int
    init(pool: WorkerPool, index: Int) {
      self.pool = pool
      self.index = index
    }
  }

  private func serve(_ index: Int) {
    while true {
      wake[index - 1].wait()
      job!(index)
      finished.signal()
    }
  }

  /// Runs body(0..<threads) with body(0) on the calling thread; returns when all are done.
  public func run(_ body: (Int) -> Void) {
    guard threads > 1 else { return body(0) }
    withoutActuallyEscaping(body) { body in
      job = body
      for semaphore in wake { semaphore.signal() }
      body(0)
      for _ in wake { finished.wait() }
      job = nil
    }
  }

  /// Splits 0..<count into one contiguous range per thread (sizes differ by at most one, each a
  /// multiple of `granularity` except the last) and runs body(range, threadIndex) in parallel, with
  /// OpenBLAS on one thread meanwhile. Every element is computed as a serial loop would compute it,
  /// so results do not depend on the thread count.
  public func parallelFor(_ count: Int, granularity: Int = 1, _ body: (Range<Int>, Int) -> Void) {
    guard threads > 1, count > granularity else { return body(0..<count, 0) }
    let blasThreads = openblas_get_num_threads()
    openblas_set_num_threads(1)
    let units = (count + granularity - 1) / granularity
    run { index in
      let lower = min(count, units * index / threads * granularity)
      let upper = min(count, units * (index + 1) / threads * granularity)
      if lower < upper { body(lower..<upper, index) }
    }
    openblas_set_num_threads(blasThreads)
  }

  static func resize(_ threads: Int) {
    guard threads != shared.threads else { return }
    // The old pool's threads stay parked on their semaphores; resizing happens once at start-up.
    shared = WorkerPool(threads: threads)
  }
}
