// A communicator that tells RankActivity which collective this rank waits in, around every call of
// the one it wraps: the watchdog's view of the job. Everything else passes straight through, so the
// trainer neither knows nor cares that it is watched.

public final class WatchedCommunicator: Communicator {
  private let inner: Communicator
  public let activity: RankActivity

  public init(_ inner: Communicator, activity: RankActivity) {
    self.inner = inner
    self.activity = activity
  }

  public var rank: Int { inner.rank }
  public var size: Int { inner.size }
  public var localRank: Int { inner.localRank }
  public var localSize: Int { inner.localSize }
  public var threadSupport: ThreadSupport { inner.threadSupport }

  @inline(__always)
  private func watched<R>(_ collective: Activity, _ body: () throws -> R) rethrows -> R {
    activity.enter(collective)
    defer { activity.leave() }
    return try body()
  }

  public func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws {
    try watched(.allreduce) { try inner.allreduceSum(buffer) }
  }

  public func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Double>) throws {
    try watched(.allreduce) { try inner.allreduceSum(buffer) }
  }

  public func reduceScatterSum(_ buffer: UnsafeMutableBufferPointer<Float>, scratch: UnsafeMutableBufferPointer<Float>) throws {
    try watched(.reduceScatter) { try inner.reduceScatterSum(buffer, scratch: scratch) }
  }

  public func allgather(_ buffer: UnsafeMutableBufferPointer<Float>) throws {
    try watched(.allgather) { try inner.allgather(buffer) }
  }

  public func allreduceMax(_ buffer: UnsafeMutableBufferPointer<Double>) throws {
    try watched(.allreduce) { try inner.allreduceMax(buffer) }
  }

  public func broadcast(_ buffer: UnsafeMutableRawBufferPointer, root: Int) throws {
    try watched(.broadcast) { try inner.broadcast(buffer, root: root) }
  }

  public func barrier() throws {
    try watched(.barrier) { try inner.barrier() }
  }

  public func finalize() throws {
    activity.begin(.finished, step: activity.snapshot().step)
    try inner.finalize()
  }

  public func abort(code: Int32) -> Never { inner.abort(code: code) }
}
