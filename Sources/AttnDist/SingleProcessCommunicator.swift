// The world of one: what a plain `attn-train` run uses, so it never initializes MPI. Rank 0 of 1,
// so every reduction is already complete and a broadcast from rank 0 has nothing to move.
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

public final class SingleProcessCommunicator: Communicator, Sendable {
  public init() {}

  public var rank: Int { 0 }
  public var size: Int { 1 }
  public var localRank: Int { 0 }
  public var localSize: Int { 1 }

  public func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws {}
  public func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Double>) throws {}
  public func reduceScatterSum(_ buffer: UnsafeMutableBufferPointer<Float>, scratch: UnsafeMutableBufferPointer<Float>) throws {}
  public func allgather(_ buffer: UnsafeMutableBufferPointer<Float>) throws {}
  public func allreduceMax(_ buffer: UnsafeMutableBufferPointer<Double>) throws {}
  public func allreduceMax(_ buffer: UnsafeMutableBufferPointer<Float>) throws {}

  public func broadcast(_ buffer: UnsafeMutableRawBufferPointer, root: Int) throws {
    precondition(root == 0, "broadcast root \(root) is not a rank of a single-process world")
  }

  public func barrier() throws {}

  /// Nothing else exists to talk to, so any thread may call at any time.
  public var threadSupport: ThreadSupport { .multiple }

  public func finalize() throws {}

  public func abort(code: Int32) -> Never {
    // exit() flushes stdio too; kept explicit to match MPICommunicator, where this rank's last
    // message would otherwise be lost.
    fflush(nil)
    exit(code)
  }
}
