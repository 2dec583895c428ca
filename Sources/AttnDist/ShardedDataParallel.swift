// Sharded data parallelism: where gradients are summed over ranks, which rank updates which part of
// the parameters, and how every rank gets the whole model back. (ZeRO stage 2's gradient sharding
// without its memory saving: each rank keeps full-sized buffers, current only in its shares.)
//
//   backward ──ranges──▶ buckets ──reduce-scatter──▶ this rank's share of each bucket, summed
//   optimizer updates only those shares ──allgather──▶ every rank holds every updated parameter
//
// Backward announces each range of the flat gradient buffer once it is final (last layer first); the
// ranges are grouped into buckets of about `bucketElements` floats, and with `reduceDuringBackward` a
// communication thread reduce-scatters each bucket while backward computes the layers below it.
// Otherwise the same buckets are reduced after backward, in the same order: bucket boundaries depend
// only on the parameter layout and the bucket size, so both ways give the same bits. Mid-sized
// buckets also move data faster than one huge call here (1M floats: 7.6 GB/s, 16M floats: 1.2 GB/s
// at np=2, see ../shared/PLATFORM.md).
// A rank then clips by the norm all ranks add up (ownedSumOfSquares) and updates only its shares, so
// each rank runs the optimizer and the norm over 1/N of the buffer: the update is a pass over four
// buffers that does not shrink with the batch (medium, 2 ranks: AdamW and clipping took 14 ms of each
// rank's step when every rank updated everything). allgatherShares(of:) completes the parameters after
// the update, and the optimizer state for a checkpoint.

import AttnCore
import Dispatch
import Foundation

public final class ShardedDataParallel: @unchecked Sendable {
  private let communicator: Communicator
  private let gradients: UnsafeMutablePointer<Float>
  private let bufferCount: Int
  private let bucketElements: Int
  private let reduceDuringBackward: Bool
  // The part of the buffer announced but not yet handed to a bucket: pendingLower..<pendingUpper.
  private var pendingLower = 0
  private var pendingUpper = 0
  // The step's buckets, in submission order (allocated once; a step allocates nothing).
  private let buckets: UnsafeMutablePointer<Range<Int>>
  private let bucketCapacity: Int
  /// This rank's share of each bucket of the last step (the whole buffer when alone).
  private let shareList: UnsafeMutablePointer<Range<Int>>
  private var shareCount = 0
  /// Σ g² over each bucket's share, taken as soon as the share is summed (still in cache).
  private let shareSquares: UnsafeMutablePointer<Double>
  /// This rank's part of the gradients' sum of squares, after finish(): the ranks' parts add up to
  /// the whole batch's.
  public private(set) var ownedSumOfSquares = 0.0
  /// Where peers' partial sums arrive during a reduce-scatter.
  private let scratch: FloatBuffer
  private var submitted = 0
  private var taken = 0
  private let queued = DispatchSemaphore(value: 0)
  private let reduced = DispatchSemaphore(value: 0)
  private let stopped = DispatchSemaphore(value: 0)
  private var stopping = false
  private var failure: Error?

  /// `bucketElements` Floats per bucket (a bucket may be larger: announced ranges are not split).
  /// Reducing during backward needs a communicator that a second thread may call; without one the
  /// buckets are reduced after backward, with the same results.
  public init(
    communicator: Communicator, gradients: FloatBuffer, layout: ParameterLayout, bucketElements: Int,
    reduceDuringBackward: Bool
  ) {
    self.communicator = communicator
    self.gradients = gradients.pointer
    bufferCount = gradients.count
    self.bucketElements = max(1, bucketElements)
    self.reduceDuringBackward =
      reduceDuringBackward && communicator.size > 1 && communicator.threadSupport >= .serialized
    // Backward announces each tensor at most once, and a bucket holds at least one announcement.
    bucketCapacity = layout.tensors.count + 2
    buckets = .allocate(capacity: bucketCapacity)
    buckets.initialize(repeating: 0..<0, count: bucketCapacity)
    shareList = .allocate(capacity: bucketCapacity)
    shareList.initialize(repeating: 0..<0, count: bucketCapacity)
    shareSquares = .allocate(capacity: bucketCapacity)
    shareSquares.initialize(repeating: 0, count: bucketCapacity)
    scratch = FloatBuffer(count: communicator.size > 1 ? min(self.bucketElements, layout.count) : 0)
    if self.reduceDuringBackward {
      // unowned(unsafe): deinit waits for the thread to leave, and a checked reference would trap
      // when the thread reads it during deinit.
      let thread = Thread { [unowned(unsafe) self] in self.serve() }
      thread.name = "attn-train gradient reduce-scatter"
      thread.start()
    }
  }

  deinit {
    if reduceDuringBackward {
      stopping = true
      queued.signal()
      stopped.wait()
    }
    buckets.deallocate()
    shareList.deallocate()
    shareSquares.deallocate()
  }

  /// Starts a step's reduction: the next announced range must end the buffer. The previous step's
  /// finish() has waited for every bucket, so the communication thread is idle here.
  public func beginStep() {
    pendingLower = bufferCount
    pendingUpper = bufferCount
    submitted = 0
    taken = 0
    shareCount = 0
  }

  /// Backward's callback: `range` is final and directly below what was announced before.
  public func gradientsReady(_ range: Range<Int>) {
    precondition(range.upperBound == pendingLower, "gradient ranges must arrive from the end of the buffer down")
    pendingLower = range.lowerBound
    if pendingUpper - pendingLower >= bucketElements { submitPending() }
  }

  /// Reduces what is left and waits until every bucket is summed; rethrows a communication error.
  /// Afterwards `ownedShares` holds the summed gradients of this rank's share of every bucket.
  public func finish() throws {
    if pendingUpper > pendingLower { submitPending() }
    if reduceDuringBackward {
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
      ownedSumOfSquares = sumOfSquares(gradients, bufferCount)
      return
    }
    // reduce() wrote each bucket's share and its sum of squares; added up in bucket order.
    ownedSumOfSquares = 0
    for i in 0..<submitted { ownedSumOfSquares += shareSquares[i] }
    shareCount = submitted
  }

  /// The ranges of the buffer whose gradients this rank holds summed after finish(), and whose
  /// parameters (and optimizer state) it alone updates.
  public var ownedShares: UnsafeBufferPointer<Range<Int>> { UnsafeBufferPointer(start: shareList, count: shareCount) }

  /// Completes a buffer laid out like the gradients whose shares each rank holds current: the
  /// parameters after each rank's update, the optimizer state for a checkpoint. Every bucket of the
  /// last step, gathered.
  public func allgatherShares(of buffer: FloatBuffer) throws {
    guard communicator.size > 1 else { return }
    for i in 0..<submitted {
      let bucket = buckets[i]
      try communicator.allgather(UnsafeMutableBufferPointer(start: buffer.pointer + bucket.lowerBound, count: bucket.count))
    }
  }

  private func submitPending() {
    let bucket = pendingLower..<pendingUpper
    pendingUpper = pendingLower
    // At most one bucket per announced range, and there is a slot for each tensor. Both ways keep
    // the step's buckets there: finish() and the gathers walk them.
    precondition(submitted < bucketCapacity, "more buckets than announced ranges")
    buckets[submitted] = bucket
    submitted += 1
    if reduceDuringBackward {
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

  /// The communication thread: takes buckets in submission order until deinit stops it.
  private func serve() {
    while true {
      queued.wait()
      if stopping { break }
      let bucket = buckets[taken]
      taken += 1
      reduce(bucket, index: taken - 1)
      reduced.signal()
    }
    stopped.signal()
  }
}
