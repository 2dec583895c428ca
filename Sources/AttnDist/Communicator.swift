// The one seam between training and communication. Data-parallel training needs little: who am I
// and how many are we, sum and max reductions over flat buffers, a broadcast from one rank, a
// barrier, whether another thread may communicate, an orderly end and a way to take the whole job
// down when one rank fails. MPICommunicator implements it over Open MPI; SingleProcessCommunicator
// is the world of one, so a plain run never touches MPI; InProcessCommunicator runs N ranks as
// threads of one process, for tests. Callers never ask which one they have.
// Every collective must be entered by every rank, in the same order, with the same element counts:
// a rank that skips one leaves the others waiting forever, and nothing detects that.

/// Which threads may call a communicator's collectives (MPI's MPI_THREAD_* levels). Ordered: a level
/// permits everything the levels below it permit.
public enum ThreadSupport: Int, Comparable, Sendable {
  /// Only one thread exists in the process.
  case single
  /// Threads exist (compute threads), but only the thread that created the communicator calls it.
  case funneled
  /// Any thread may call it, one at a time: what a communication thread beside compute needs.
  case serialized
  /// Any thread may call it at any time.
  case multiple

  public static func < (a: ThreadSupport, b: ThreadSupport) -> Bool { a.rawValue < b.rawValue }
}

public protocol Communicator: AnyObject {
  /// This process's rank, in `0..<size`. Rank 0 is the one that speaks.
  var rank: Int { get }
  var size: Int { get }
  /// This process's rank among the processes on the same node, in `0..<localSize`: what a rank needs
  /// to choose its share of the node's cores.
  var localRank: Int { get }
  var localSize: Int { get }

  /// Replaces every element with its sum over all ranks.
  func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws
  /// Replaces every element with its sum over all ranks.
  func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Double>) throws
  /// The first half of allreduceSum: afterwards this rank's share of `buffer` (`share(of:)`) holds
  /// the sum over ranks, and the rest of it partial sums. Peers' pieces arrive in `scratch`.
  func reduceScatterSum(_ buffer: UnsafeMutableBufferPointer<Float>, scratch: UnsafeMutableBufferPointer<Float>) throws
  /// The second half: every rank's share of `buffer` copied into place on every rank.
  func allgather(_ buffer: UnsafeMutableBufferPointer<Float>) throws
  /// Replaces every element with its maximum over all ranks.
  func allreduceMax(_ buffer: UnsafeMutableBufferPointer<Double>) throws
  /// Overwrites `buffer` on every rank with the bytes `root` holds. Every rank passes the same count.
  func broadcast(_ buffer: UnsafeMutableRawBufferPointer, root: Int) throws
  func barrier() throws
  /// What the communicator granted, which may be below what was asked for: a caller that wants to
  /// communicate from a second thread must check for `.serialized`.
  var threadSupport: ThreadSupport { get }
  /// Ends communication in this process: every rank calls it after its last collective, before a
  /// successful exit. Calling it again does nothing.
  func finalize() throws
  /// Ends every rank of the job promptly, including ranks waiting in a collective this one will
  /// never enter. For errors on one rank that the others cannot know about.
  func abort(code: Int32) -> Never
}

extension Communicator {
  /// This rank's share of `count` elements for reduceScatterSum and allgather: the shares tile
  /// 0..<count in rank order and differ in size by at most one element.
  public func share(of count: Int) -> Range<Int> {
    (count * rank / size)..<(count * (rank + 1) / size)
  }
}

// MARK: - Conveniences for small values
// These allocate or copy; they are for once-per-step scalars and start-up data, not for gradients.

extension Communicator {
  /// The sum of `value` over all ranks (a loss, a token count).
  public func allreduceSum(_ value: Double) throws -> Double {
    var value = value
    try withUnsafeMutablePointer(to: &value) {
      try allreduceSum(UnsafeMutableBufferPointer(start: $0, count: 1))
    }
    return value
  }

  /// The maximum of `value` over all ranks (a step time, a "some rank failed" flag).
  public func allreduceMax(_ value: Double) throws -> Double {
    var value = value
    try withUnsafeMutablePointer(to: &value) {
      try allreduceMax(UnsafeMutableBufferPointer(start: $0, count: 1))
    }
    return value
  }

  /// Elementwise sum over all ranks of a small scratch array (several metrics in one call).
  public func allreduceSum(_ values: inout [Double]) throws {
    try values.withUnsafeMutableBufferPointer { try allreduceSum($0) }
  }

  public func allreduceSum(_ values: inout [Float]) throws {
    try values.withUnsafeMutableBufferPointer { try allreduceSum($0) }
  }

  public func allreduceMax(_ values: inout [Double]) throws {
    try values.withUnsafeMutableBufferPointer { try allreduceMax($0) }
  }

  /// Overwrites `value` on every rank with root's (a seed, a step number, a fixed-size header).
  public func broadcast<T: BitwiseCopyable>(_ value: inout T, root: Int) throws {
    try withUnsafeMutableBytes(of: &value) { try broadcast($0, root: root) }
  }

  /// Overwrites a typed buffer on every rank with root's (parameters after root loads a checkpoint).
  public func broadcast<T: BitwiseCopyable>(_ buffer: UnsafeMutableBufferPointer<T>, root: Int) throws {
    try broadcast(UnsafeMutableRawBufferPointer(buffer), root: root)
  }

  /// Gives every rank root's bytes when only root knows how many there are: the length goes first,
  /// so non-root ranks may pass any array (it is replaced).
  public func broadcast(_ bytes: inout [UInt8], root: Int) throws {
    var count = UInt64(bytes.count)
    try broadcast(&count, root: root)
    if rank != root { bytes = [UInt8](repeating: 0, count: Int(count)) }
    try bytes.withUnsafeMutableBytes { try broadcast($0, root: root) }
  }

  /// Root's `string` on every rank (a run name, a resolved config); other ranks' argument is ignored.
  public func broadcast(_ string: String, root: Int) throws -> String {
    var bytes = rank == root ? Array(string.utf8) : []
    try broadcast(&bytes, root: root)
    return String(decoding: bytes, as: UTF8.self)
  }
}
