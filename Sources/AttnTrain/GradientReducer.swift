// Sums the flat gradient buffer over ranks in buckets of a fixed size. Backward announces each range
// of the buffer once it is final (last layer first); the reducer groups them into buckets and, with
// overlap on, a communication thread reduces each bucket while backward computes the layers below.
// Without overlap the same buckets are reduced after backward, in the same order: bucket boundaries
// depend only on the parameter layout and the bucket size, so both ways give the same bits.
// Mid-sized buckets also move data faster than one huge allreduce here (1M floats: 7.6 GB/s,
// 16M floats: 1.2 GB/s at np=2, see ../shared/PLATFORM.md).
//
// Each bucket is only reduce-scattered: a rank ends up with the summed gradient of its share of
// every bucket, updates those parameters alone, and gatherShards(of:) then hands every rank the
// others' shares (the two halves of an allreduce, with the optimizer between them). So each rank
// runs the optimizer and the norm over 1/N of the buffer: the update is a pass over four buffers
// that does not shrink with the batch (medium, 2 ranks: AdamW and clipping took 14 ms of each
// rank's step when every rank updated everything). The optimizer state stays full-sized on every
// rank, current in the rank's shares; gatherShards(of:) completes it for a checkpoint.

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
  private var bufferCount = 0
  // A fixed ring of buckets for the communication thread (allocated once; a step allocates nothing).
  private let ring: UnsafeMutablePointer<Range<Int>>
  private let ringCapacity: Int
  /// This rank's share of each bucket of the last step (the whole buffer when alone).
  private let shareList: UnsafeMutablePointer<Range<Int>>
  private var shareCount = 0
  /// Σ g² over each bucket's share, taken as soon as the share is summed (still in cache).
  private let shareSquares: UnsafeMutablePointer<Double>
  /// This rank's part of the gradients' sum of squares, after finish().
  private(set) var sumOfSquaresOfShares = 0.0
  /// Where peers' partial sums arrive during a reduce-scatter.
  private let scratch: FloatBuffer
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
    shareList = .allocate(capacity: ringCapacity)
    shareList.initialize(repeating: 0..<0, count: ringCapacity)
    shareSquares = .allocate(capacity: ringCapacity)
    shareSquares.initialize(repeating: 0, count: ringCapacity)
    scratch = FloatBuffer(count: communicator.size > 1 ? min(self.bucketElements, layout.count) : 0)
    if self.overlap {
      let thread = Thread { [unowned self] in self.serve() }
      thread.name = "attn-train allreduce"
      thread.start()
    }
  }

  deinit {
    ring.deallocate()
    shareList.deallocate()
    shareSquares.deallocate()
  }

  /// Starts a step's reduction: the next announced range must end the buffer. The previous step's
  /// finish() has waited for every bucket, so the communication thread is idle here.
  func begin(count: Int) {
    bufferCount = count
    pendingLower = count
    pendingUpper = count
    submitted = 0
    taken = 0
    shareCount = 0
  }

  /// Backward's callback: `range` is final and directly below what was announced before.
  func gradientsReady(_ range: Range<Int>) {
    precondition(range.upperBound == pendingLower, "gradient ranges must arrive from the end of the buffer down")
    pendingLower = range.lowerBound
    if pendingUpper - pendingLower >= bucketElements { submitPending() }
  }

  /// Reduces what is left and waits until every bucket is summed; rethrows a communication error.
  /// Afterwards `shares` holds the summed gradients of this rank's share of every bucket.
  func finish() throws {
    if pendingUpper > pendingLower { submitPending() }
    if overlap {
      for _ in 0..<submitted { reduced.wait() }
    }
    if let failure {
      self.failure = nil
      throw failure
    }
    if communicator.size == 1 {
      // One range, so that the gradient norm adds up in the same order as over the plain buffer.
      shareList[0] = 0..<bufferCount
      shareCount = 1
      sumOfSquaresOfShares = sumOfSquares(gradients, bufferCount)
      return
    }
    // reduce() wrote each bucket's share and its sum of squares; added up in bucket order.
    sumOfSquaresOfShares = 0
    for i in 0..<submitted { sumOfSquaresOfShares += shareSquares[i] }
    shareCount = submitted
  }

  /// The ranges of the buffer whose gradients this rank holds summed after finish(), and whose
  /// parameters (and optimizer state) it alone updates.
  var shares: UnsafeBufferPointer<Range<Int>> { UnsafeBufferPointer(start: shareList, count: shareCount) }

  /// Completes a buffer laid out like the gradients whose shares each rank holds current: the
  /// parameters after each rank's update, the optimizer state for a checkpoint. Every bucket of the
  /// last step, gathered.
  func gatherShards(of buffer: FloatBuffer) throws {
    guard communicator.size > 1 else { return }
    for i in 0..<submitted {
      let bucket = ring[i]
      try communicator.allgather(UnsafeMutableBufferPointer(start: buffer.pointer + bucket.lowerBound, count: bucket.count))
    }
  }

  private func submitPending() {
    let bucket = pendingLower..<pendingUpper
    pendingUpper = pendingLower
    // At most one bucket per announced range, and the ring has a slot for each tensor. Both ways
    // keep the step's buckets there: finish() and the gathers walk them.
    precondition(submitted < ringCapacity, "more buckets than announced ranges")
    ring[submitted] = bucket
    submitted += 1
    if overlap {
      queued.signal()
    } else {
      reduce(bucket, index: submitted - 1)
    }
  }

  private func reduce(_ bucket: Range<Int>, index: Int) {
    guard failure == nil, communicator.size > 1 else { return }
    do {
      try communicator.reduceScatterSum(
        UnsafeMutableBufferPointer(start: gradients + bucket.lowerBound, count: bucket.count), scratch: scratch.buffer)
      let share = communicator.share(of: bucket.count)
      shareList[index] = (bucket.lowerBound + share.lowerBound)..<(bucket.lowerBound + share.upperBound)
      shareSquares[index] = sumOfSquares(gradients + shareList[index].lowerBound, share.count)
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
      reduce(bucket, index: taken - 1)
      reduced.signal()
    }
  }
}
