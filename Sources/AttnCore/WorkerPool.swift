// Threads for the work between the sgemms (attention per batch and head, GELU, LayerNorm, softmax,
// the optimizer): OpenBLAS parallelises inside each sgemm, but with 2 threads and everything else on
// one, the elementwise and attention passes capped the step (Amdahl). The pool's threads start once
// and wait on semaphores.
// A job is a struct conforming to ParallelKernel, handed to the workers as a pointer to the
// caller's stack plus its type: a closure would not do, because making a non-escaping closure
// reachable from another thread (withoutActuallyEscaping, concurrentPerform) allocates on every
// call (measured), and the training step must allocate nothing.
// OpenBLAS itself runs on one thread (ComputeThreads.set): the pool's threads call it.

import Dispatch

#if canImport(Glibc)
  import Glibc
#else
  import Darwin
#endif

/// A piece of parallel work: `run` does the part of 0..<count in `range`, on pool thread `thread`
/// (0 is the caller), and must compute every element exactly as a serial loop would.
public protocol ParallelKernel {
  func run(_ range: Range<Int>, thread: Int)
}

extension ParallelKernel {
  static func run(at pointer: UnsafeRawPointer, _ range: Range<Int>, thread: Int) {
    pointer.assumingMemoryBound(to: Self.self).pointee.run(range, thread: thread)
  }
}

public final class WorkerPool: @unchecked Sendable {
  /// The pool a model built now will use; resized by ComputeThreads.set. A model keeps the pool it
  /// was built with (its scratch buffers are sized for it), so resizing never races a running model.
  nonisolated(unsafe) public private(set) static var shared = WorkerPool.serial
  /// One thread, no workers: what the kernel tests use.
  public static let serial = WorkerPool(threads: 1)

  public let threads: Int
  private let wake: [DispatchSemaphore]
  private let finished = DispatchSemaphore(value: 0)
  // The job in flight, set by parallelFor before waking the workers.
  private var job: UnsafeRawPointer?
  private var jobType: (any ParallelKernel.Type)?
  private var jobCount = 0
  private var jobGranularity = 1

  public init(threads: Int) {
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
      let range = share(index)
      if !range.isEmpty { jobType!.run(at: job!, range, thread: index) }
      finished.signal()
    }
  }

  /// Thread `index`'s contiguous part of the job: sizes differ by at most one unit of granularity.
  private func share(_ index: Int) -> Range<Int> {
    let units = (jobCount + jobGranularity - 1) / jobGranularity
    let lower = min(jobCount, units * index / threads * jobGranularity)
    let upper = min(jobCount, units * (index + 1) / threads * jobGranularity)
    return lower..<upper
  }

  /// Runs kernel over 0..<count split into one contiguous range per thread (each a multiple of
  /// `granularity` except the last); returns when all are done. Small jobs run on the caller alone.
  public func parallelFor<Kernel: ParallelKernel>(_ count: Int, granularity: Int = 1, _ kernel: Kernel) {
    guard threads > 1, count > granularity else { return kernel.run(0..<count, thread: 0) }
    var kernel = kernel
    withUnsafePointer(to: &kernel) { pointer in
      job = UnsafeRawPointer(pointer)
      jobType = Kernel.self
      jobCount = count
      jobGranularity = granularity
      for semaphore in wake { semaphore.signal() }
      let range = share(0)
      if !range.isEmpty { pointer.pointee.run(range, thread: 0) }
      for _ in wake { finished.wait() }
      job = nil
      jobType = nil
    }
  }

  static func resize(_ threads: Int) {
    guard threads != shared.threads else { return }
    // The old pool's threads stay parked on their semaphores; resizing happens once at start-up.
    shared = WorkerPool(threads: threads)
  }
}
