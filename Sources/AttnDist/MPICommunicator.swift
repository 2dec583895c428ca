// Communicator over Open MPI, and the one Swift file that imports CMPIShim: it owns MPI's lifetime
// in this process (initialized once, finalized once) and lifts the shim's integer return codes into
// MPIError. Rank, size and the node-local split cannot change during a run, so they are read once.
// The operation name in an error is an autoclosure, so collectives format no strings unless they fail.
import CMPIShim

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A failed MPI call: which operation, MPI's error code, and MPI's own text for that code.
public struct MPIError: Error, CustomStringConvertible, Sendable {
  public let operation: String
  public let code: Int32
  public let message: String

  public var description: String { "\(operation) failed (MPI error \(code)): \(message)" }
}

public final class MPICommunicator: Communicator {
  public let rank: Int
  public let size: Int
  public let localRank: Int
  public let localSize: Int
  /// What MPI granted, which may be below what was asked for.
  public let threadSupport: ThreadSupport
  /// Whether a call that waits for other ranks yields its core rather than spinning (Open MPI's
  /// mpi_yield_when_idle); nil when the tool interface could not tell.
  public let yieldsWhenIdle: Bool?
  private var isFinalized = false

  /// Initializes MPI (under mpirun, or as a singleton world of one without it). MPI allows this once
  /// per process: a second MPICommunicator, even after `finalize()`, throws.
  public init(threadSupport requested: ThreadSupport = .funneled) throws {
    var provided: Int32 = CMPI_THREAD_SINGLE
    try check(cmpi_init(requested.shimValue, &provided), "MPI_Init_thread")
    threadSupport = ThreadSupport(shimValue: provided)
    var value: Int32 = 0
    try check(cmpi_world_rank(&value), "MPI_Comm_rank(MPI_COMM_WORLD)")
    rank = Int(value)
    try check(cmpi_world_size(&value), "MPI_Comm_size(MPI_COMM_WORLD)")
    size = Int(value)
    try check(cmpi_local_rank(&value), "MPI_Comm_rank(node-local communicator)")
    localRank = Int(value)
    try check(cmpi_local_size(&value), "MPI_Comm_size(node-local communicator)")
    localSize = Int(value)
    yieldsWhenIdle = cmpi_yield_when_idle(&value) == CMPI_SUCCESS ? value != 0 : nil
  }

  /// Ends MPI in this process. Every rank must call it (it synchronizes), after its last collective
  /// and before a successful exit. Calling it again does nothing.
  public func finalize() throws {
    if isFinalized { return }
    isFinalized = true
    try check(cmpi_finalize(), "MPI_Finalize")
  }

  /// Seconds on MPI's clock (MPI_Wtime).
  public func wtime() -> Double { cmpi_wtime() }

  // MARK: - Collectives

  public func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws {
    requireRunning()
    try check(
      cmpi_allreduce_sum_float(buffer.baseAddress, buffer.count),
      "MPI_Allreduce(MPI_SUM) of \(buffer.count) floats")
  }

  public func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Double>) throws {
    requireRunning()
    try check(
      cmpi_allreduce_sum_double(buffer.baseAddress, buffer.count),
      "MPI_Allreduce(MPI_SUM) of \(buffer.count) doubles")
  }

  public func reduceScatterSum(_ buffer: UnsafeMutableBufferPointer<Float>, scratch: UnsafeMutableBufferPointer<Float>) throws {
    requireRunning()
    precondition(scratch.count > 0 || size == 1, "reduceScatterSum needs scratch space")
    try check(
      cmpi_reduce_scatter_sum_float(buffer.baseAddress, buffer.count, scratch.baseAddress, scratch.count),
      "reduce-scatter (MPI_Sendrecv ring) of \(buffer.count) floats")
  }

  public func allgather(_ buffer: UnsafeMutableBufferPointer<Float>) throws {
    requireRunning()
    try check(
      cmpi_allgather_float(buffer.baseAddress, buffer.count), "allgather (MPI_Sendrecv ring) of \(buffer.count) floats")
  }

  public func allreduceMax(_ buffer: UnsafeMutableBufferPointer<Float>) throws {
    requireRunning()
    try check(
      cmpi_allreduce_max_float(buffer.baseAddress, buffer.count),
      "MPI_Allreduce(MPI_MAX) of \(buffer.count) floats")
  }

  public func allreduceMax(_ buffer: UnsafeMutableBufferPointer<Double>) throws {
    requireRunning()
    try check(
      cmpi_allreduce_max_double(buffer.baseAddress, buffer.count),
      "MPI_Allreduce(MPI_MAX) of \(buffer.count) doubles")
  }

  public func broadcast(_ buffer: UnsafeMutableRawBufferPointer, root: Int) throws {
    requireRunning()
    precondition((0..<size).contains(root), "broadcast root \(root) is not a rank in 0..<\(size)")
    try check(
      cmpi_broadcast_bytes(buffer.baseAddress, buffer.count, Int32(root)),
      "MPI_Bcast of \(buffer.count) bytes from rank \(root)")
  }

  public func barrier() throws {
    requireRunning()
    try check(cmpi_barrier(), "MPI_Barrier")
  }

  public func abort(code: Int32) -> Never {
    // After MPI_Finalize there is no job left to abort; this process is the only one to end.
    if !isFinalized { _ = cmpi_abort(code) }
    fflush(nil)
    exit(code)
  }

  // MARK: - Errors

  private func requireRunning() {
    precondition(!isFinalized, "MPICommunicator used after finalize()")
  }

  /// Lowers the elements per MPI call so tests can run the shim's chunk loop on small buffers;
  /// 0 restores the default (INT32_MAX). Every rank must set the same limit.
  static func setChunkLimitForTesting(_ elements: Int) {
    cmpi_set_chunk_limit_for_testing(elements)
  }

  /// MPI's text for `code`, or the shim's for its own codes.
  static func errorString(_ code: Int32) -> String {
    withUnsafeTemporaryAllocation(of: CChar.self, capacity: Int(CMPI_MAX_ERROR_STRING)) { text in
      text.initialize(repeating: 0)
      _ = cmpi_error_string(code, text.baseAddress, text.count)
      return String(cString: text.baseAddress!)
    }
  }
}

extension ThreadSupport {
  fileprivate var shimValue: Int32 {
    switch self {
    case .single: CMPI_THREAD_SINGLE
    case .funneled: CMPI_THREAD_FUNNELED
    case .serialized: CMPI_THREAD_SERIALIZED
    case .multiple: CMPI_THREAD_MULTIPLE
    }
  }

  fileprivate init(shimValue: Int32) {
    switch shimValue {
    case CMPI_THREAD_MULTIPLE: self = .multiple
    case CMPI_THREAD_SERIALIZED: self = .serialized
    case CMPI_THREAD_FUNNELED: self = .funneled
    default: self = .single
    }
  }
}

private func check(_ code: Int32, _ operation: @autoclosure () -> String) throws {
  guard code != CMPI_SUCCESS else { return }
  throw MPIError(
    operation: operation(), code: code, message: MPICommunicator.errorString(code))
}
