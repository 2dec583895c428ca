// The threads every kernel of a step is shared among: each sgemm by rows, attention by (batch, head),
// the elementwise passes and the optimizer by ranges. The pool's threads start once. Between jobs a
// worker spins on a generation counter for a while and only then sleeps on its semaphore: waking a
// sleeping thread cost about 7.6 µs per job here, against 0.9 µs when it spins, and a tiny step runs
// about 70 jobs.
// A job is a struct conforming to ParallelKernel, handed to the workers as a pointer to the
// caller's stack plus its type: a closure would not do, because making a non-escaping closure
// reachable from another thread (withoutActuallyEscaping, concurrentPerform) allocates on every
// call (measured), and the training step must allocate nothing.
// OpenBLAS itself runs on one thread: the pool's threads call it. Every pool sets that when it is
// made, because every model is built with a pool: OpenBLAS's default (a thread per core) changes how
// each sgemm is split, so a model used before anything else had set it computed other bits, and its
// threads spin after each call on the cores the pool needs.

import CBLAS
import Dispatch
import Synchronization

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

/// How many times a waiting thread polls before it sleeps (workers) or starts yielding (the caller):
/// some tens of microseconds, enough to cover the gaps between the kernels of a step.
let spinIterations = 40_000

public final class WorkerPool: @unchecked Sendable {
  /// The pool a model built now will use; resized by ComputeThreads.set. A model keeps the pool it
  /// was built with (its scratch buffers are sized for it), so resizing never races a running model.
  nonisolated(unsafe) public private(set) static var shared = WorkerPool.serial
  /// One thread, no workers: what the kernel tests use.
  public static let serial = WorkerPool(threads: 1)

  public let threads: Int
  private let workers: [Worker]
  /// Bumped once per job: a worker runs a job when it sees a generation it has not run.
  private let generation = Atomic<Int>(0)
  /// Workers still running the current job.
  private let running = Atomic<Int>(0)
  // The job in flight, set by parallelFor before it bumps the generation.
  private var job: UnsafeRawPointer?
  private var jobType: (any ParallelKernel.Type)?
  private var jobCount = 0
  private var jobGranularity = 1

  public init(threads: Int) {
    openblas_set_num_threads(1)
    self.threads = max(1, threads)
    workers = (1..<max(1, threads)).map { _ in Worker() }
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

  /// Where a worker sleeps when no job came while it spun; `sleeping` tells the caller to signal.
  private final class Worker {
    let wake = DispatchSemaphore(value: 0)
    let sleeping = Atomic<Bool>(false)
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
    var seen = 0
    while true {
      seen = waitForJob(after: seen, worker: workers[index - 1])
      let range = share(index)
      if !range.isEmpty { jobType!.run(at: job!, range, thread: index) }
      running.subtract(1, ordering: .releasing)
    }
  }

  /// Returns the generation of the next job, spinning first and then sleeping until signalled.
  private func waitForJob(after seen: Int, worker: Worker) -> Int {
    while true {
      for _ in 0..<spinIterations {
        let current = generation.load(ordering: .acquiring)
        if current != seen { return current }
      }
      // Announce the sleep, then look once more: either this load sees a new generation, or the
      // caller's exchange (after its bump, in the same total order) sees the flag and signals.
      worker.sleeping.store(true, ordering: .sequentiallyConsistent)
      if generation.load(ordering: .sequentiallyConsistent) == seen {
        worker.wake.wait()
      } else if !worker.sleeping.exchange(false, ordering: .sequentiallyConsistent) {
        // The caller took the flag first and signalled: consume that signal so none is left over.
        worker.wake.wait()
      }
      // A caller preempted between its bump and its exchange may signal for a job this worker
      // has already run (seen while spinning): then there is nothing new, and it waits again.
      let current = generation.load(ordering: .acquiring)
      if current != seen { return current }
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
      running.store(threads - 1, ordering: .relaxed)
      generation.add(1, ordering: .sequentiallyConsistent)
      for worker in workers where worker.sleeping.exchange(false, ordering: .sequentiallyConsistent) {
        worker.wake.signal()
      }
      let range = share(0)
      if !range.isEmpty { pointer.pointee.run(range, thread: 0) }
      // Yield after a while: with more threads than cores, the workers may need this core.
      var spins = 0
      while running.load(ordering: .acquiring) > 0 {
        spins += 1
        if spins > spinIterations { sched_yield() }
      }
      job = nil
      jobType = nil
    }
  }

  static func resize(_ threads: Int) {
    guard threads != shared.threads else { return }
    // The old pool's threads spin out and stay asleep on their semaphores; resizing happens once
    // at start-up.
    shared = WorkerPool(threads: threads)
  }
}
