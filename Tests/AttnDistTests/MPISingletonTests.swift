// MPI without mpirun: MPI_Init makes a singleton world of size 1, which exercises the shim, the
// error lifting and the init-once guard inside `swift test`. MPI may be initialized once per
// process, so every test shares one communicator, and the suite is serialized because Swift Testing
// otherwise runs tests concurrently (the communicator asks for MPI_THREAD_SERIALIZED for the same
// reason: tests run on whichever thread the pool picks). Multi-rank behaviour is tested by running
// the built binary under mpirun.
// Note: after MPI_Init this process carries OMPI_* variables; a test that starts mpirun must strip
// them from the child's environment.
import Foundation
import Testing

@testable import AttnDist

// Not Sendable (MPI state is per process, not per thread); the serialized suite is the only user.
// Isolated: no helper daemon. Open MPI otherwise forks an orted that inherits this process's
// descriptors, `swift test`'s output pipe among them, and lives as long as this process does.
nonisolated(unsafe) private let shared = Result {
  setenv("OMPI_MCA_ess_singleton_isolated", "1", 1)
  yieldChosenByUser = getenv("OMPI_MCA_mpi_yield_when_idle").map { String(cString: $0) }
  return try MPICommunicator(threadSupport: .serialized)
}
nonisolated(unsafe) private var yieldChosenByUser: String?

@Suite(.serialized) struct MPISingletonTests {
  @Test func singletonIsAWorldOfOne() throws {
    let mpi = try shared.get()
    #expect(mpi.rank == 0)
    #expect(mpi.size == 1)
    #expect(mpi.localRank == 0)
    #expect(mpi.localSize == 1)
    #expect(mpi.threadSupport >= .serialized)
  }

  // A second MPI thread shares the rank's core, so waiting calls must yield it: the setting has to
  // reach MPI_Init, which reads it once. (A value the user exported is left as it is.)
  @Test func waitsYieldTheCoreWhenASecondThreadMayCallMPI() throws {
    let mpi = try shared.get()
    let expected = yieldChosenByUser.map { $0 != "0" && $0.lowercased() != "false" } ?? true
    #expect(mpi.yieldsWhenIdle == expected)
  }

  @Test func reductionsOfOneRankAreIdentity() throws {
    let mpi = try shared.get()
    var floats: [Float] = [1, -2, 3.25]
    try mpi.allreduceSum(&floats)
    #expect(floats == [1, -2, 3.25])
    try floats.withUnsafeMutableBufferPointer { try mpi.allreduceMax($0) }
    #expect(floats == [1, -2, 3.25])
    #expect(try mpi.allreduceSum(0.5) == 0.5)
    #expect(try mpi.allreduceMax(7) == 7)
    var empty: [Double] = []
    try mpi.allreduceSum(&empty)
    try mpi.barrier()
    // Alone, a rank's share is everything, already summed and gathered.
    #expect(mpi.share(of: 3) == 0..<3)
    var scratch: [Float] = [0]
    try floats.withUnsafeMutableBufferPointer { buffer in
      try scratch.withUnsafeMutableBufferPointer { try mpi.reduceScatterSum(buffer, scratch: $0) }
      try mpi.allgather(buffer)
    }
    #expect(floats == [1, -2, 3.25])
  }

  @Test func broadcastsFromRankZero() throws {
    let mpi = try shared.get()
    #expect(try mpi.broadcast("config: {\"n_layer\": 4}", root: 0) == "config: {\"n_layer\": 4}")
    var bytes: [UInt8] = []
    try mpi.broadcast(&bytes, root: 0)
    #expect(bytes.isEmpty)
  }

  // With one rank every chunk is reduced to itself, so this shows the loop covers the whole buffer
  // without errors at uneven chunk boundaries; the values themselves are checked at np=4 by hand.
  @Test func chunkedCollectivesCoverUnevenTails() throws {
    let mpi = try shared.get()
    MPICommunicator.setChunkLimitForTesting(3)
    defer { MPICommunicator.setChunkLimitForTesting(0) }
    var doubles = (0..<10).map(Double.init)
    try mpi.allreduceSum(&doubles)
    #expect(doubles == (0..<10).map(Double.init))
    var bytes = Array(UInt8(0)..<11)
    try mpi.broadcast(&bytes, root: 0)
    #expect(bytes == Array(UInt8(0)..<11))
  }

  @Test func secondInitThrowsInsteadOfCallingMPIInitTwice() throws {
    _ = try shared.get()
    let error = #expect(throws: MPIError.self) { try MPICommunicator(threadSupport: .single) }
    #expect(error?.code == -1)  // CMPI_ERR_INIT_ONCE: the shim's own code, not an MPI one
    #expect(error?.operation == "MPI_Init_thread")
    #expect(error?.description.contains("only once") == true)
  }

  @Test func errorsCarryMPIsText() throws {
    _ = try shared.get()
    // MPI_ERR_BUFFER is 1 in Open MPI; the point is that the text comes from MPI_Error_string.
    #expect(MPICommunicator.errorString(1).contains("MPI_ERR_BUFFER"))
  }

  // MPI_Init marked this process a singleton (OMPI_MCA_ess=singleton); a singleton that starts its
  // daemon also gains PMIX_RANK and looks launched (LauncherDetectionTests pairs the two). Either
  // way makeCommunicator must not try MPI again.
  @Test func makeCommunicatorAfterSingletonInitStaysSingleProcess() throws {
    _ = try shared.get()
    #expect(ProcessInfo.processInfo.environment["OMPI_MCA_ess"] == "singleton")
    #expect(try makeCommunicator(environment: ProcessInfo.processInfo.environment) is SingleProcessCommunicator)
  }
}
