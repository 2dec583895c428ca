// Sums the flat gradient buffer over ranks in buckets of a fixed size. Backward announces each range
// of the buffer once it is final (last layer first); the reducer groups them into buckets and, with
// overlap on, a communication thread reduces each bucket while backward computes the layers below.
// Without overlap the same buckets are reduced after backward, in the same order: bucket boundaries
// depend only on the parameter layout and the bucket size, so both ways give the same bits.
// Mid-sized buckets also move data faster than one huge allreduce here (1M floats: 7.6 GB/s,
// 16M floats: 1.2 GB/s at np=2, see ../shared/PLATFORM.md).

import AttnCore
import AttnDist
import Dispatch
import Foundation

final class GradientReducer: @unchecked Sendable {
  private let communicator: Communicator
  private let gradients: UnsafeMutablePointer<Float>
  private let bucketElements: Int
  private let overlap: Bool
  // The part of the buffer announced but not yet handed to a bucket: pendingLower..<pendingUpper.
  private var pendingLower = 0
  private var pendingUpper = 0
  // A fixed ring of buckets for the communication thread (allocated once; a step allocates nothing).
  private let ring: UnsafeMutablePointer<Range<Int>>
  private let ringCapacity: Int
  private var submitted = 0
  private var taken = 0
  private let queued = DispatchSemaphore(value: 0)
  private let reduced = DispatchSemaphore(value: 0)
  private var failure: Error?

  /// `bucketElements` Floats per bucket (a bucket may be larger: announced ranges are not split).
  init(communicator: Communicator, gradients: FloatBuffer, layout: ParameterLayout, bucketElements: Int, overlap: Bool) {
    self.communicator = communicator
    self.gradients = gradients.pointer
    self.bucketElements = max(1, bucketElements)
    // A second thread may call MPI only if the library granted at least MPI_THREAD_SERIALIZED.
    let threadSafe = (communicator as? MPICommunicator).map { $0.providedThreadLevel >= .serialized } ?? true
    self.overlap = overlap && communicator.size > 1 && threadSafe
    // Backward announces each tensor at most once, and a bucket holds at least one announcement.
    ringCapacity = layout.tensors.count + 2
    ring = .allocate(capacity: ringCapacity)
    ring.initialize(repeating: 0..<0, count: ringCapacity)
    if self.overlap {
      let thread = Thread { [unowned self] in self.serve() }
      thread.name = "attn-train allreduce"
      thread.start()
    }
  }

  deinit { ring.deallocate() }

  /// Starts a step's reduction: the next announced range must end the buffer. The previous step's
  /// finish() has waited for every bucket, so the communication thread is idle here.
  func begin(count: Int) {
    pendingLower = count
    pendingUpper = count
    submitted = 0
    taken = 0
  }

  /// Backward's callback: `range` is final and directly below what was announced before.
  func gradientsReady(_ range: Range<Int>) {
    precondition(range.upperBound == pendingLower, "gradient ranges must arrive from the end of the buffer down")
    pendingLower = range.lowerBound
    if pendingUpper - pendingLower >= bucketElements { submitPending() }
  }

  /// Reduces what is left and waits until every bucket is summed; rethrows a communication error.
  func finish() throws {
    if pendingUpper > pendingLower { submitPending() }
    if overlap {
      for _ in 0..<submitted { reduced.wait() }
    }
    if let failure {
      self.failure = nil
      throw failure
    }
  }

  private func submitPending() {
    let bucket = pendingLower..<pendingUpper
    pendingUpper = pendingLower
    if overlap {
      // At most one bucket per announced range, and the ring has a slot for each tensor.
      precondition(submitted < ringCapacity, "more buckets than announced ranges")
      ring[submitted] = bucket
      submitted += 1
      queued.signal()
    } else {
      reduce(bucket)
    }
  }

  private func reduce(_ bucket: Range<Int>) {
    guard failure == nil else { return }
    do {
      try communicator.allreduceSum(UnsafeMutableBufferPointer(start: gradients + bucket.lowerBound, count: bucket.count))
    } catch {
      failure = error
    }
  }

  /// The communication thread: takes buckets in submission order, forever.
  private func serve() {
    while true {
      queued.wait()
      let bucket = ring[taken]
      taken += 1
      reduce(bucket)
      reduced.signal()
    }
  }
}
