// The world of one must behave exactly like an MPI world of size 1: reductions leave values as they
// are and broadcasts from rank 0 deliver rank 0's data, so the trainer needs no `if size == 1`.
import Testing

@testable import AttnDist

@Suite struct SingleProcessCommunicatorTests {
  let communicator = SingleProcessCommunicator()

  @Test func isRankZeroOfOne() {
    #expect(communicator.rank == 0)
    #expect(communicator.size == 1)
    #expect(communicator.localRank == 0)
    #expect(communicator.localSize == 1)
  }

  @Test func reductionsLeaveValuesUnchanged() throws {
    var floats: [Float] = [1.5, -2, .infinity]
    try floats.withUnsafeMutableBufferPointer { try communicator.allreduceSum($0) }
    #expect(floats == [1.5, -2, .infinity])

    var doubles: [Double] = [3, -4]
    try communicator.allreduceSum(&doubles)
    #expect(doubles == [3, -4])
    try communicator.allreduceMax(&doubles)
    #expect(doubles == [3, -4])

    #expect(try communicator.allreduceSum(2.5) == 2.5)
    #expect(try communicator.allreduceMax(-1) == -1)
  }

  @Test func broadcastFromRankZeroKeepsRankZerosData() throws {
    var bytes: [UInt8] = [1, 2, 3]
    try communicator.broadcast(&bytes, root: 0)
    #expect(bytes == [1, 2, 3])
    #expect(try communicator.broadcast("héllo", root: 0) == "héllo")
    var seed: UInt64 = 42
    try communicator.broadcast(&seed, root: 0)
    #expect(seed == 42)
    try communicator.barrier()
  }
}

@Suite struct LauncherDetectionTests {
  private func launched(_ environment: [String: String]) -> Bool {
    launchedByMPILauncher(environment: { environment[$0] })
  }

  @Test func plainRunIsNotLaunched() {
    #expect(!launched([:]))
    #expect(!launched(["PATH": "/usr/bin"]))
  }

  @Test func eachLauncherVariableMeansLaunched() {
    #expect(launched(["OMPI_COMM_WORLD_SIZE": "4"]))
    #expect(launched(["PMIX_RANK": "0"]))
    #expect(launched(["PMI_RANK": "3"]))
    // What mpirun's ranks actually carry (Open MPI 4.1).
    #expect(launched(["OMPI_MCA_ess": "^singleton", "OMPI_COMM_WORLD_SIZE": "1", "PMIX_RANK": "0"]))
  }

  // After a singleton MPI_Init (a test), the process and its children carry PMIX_RANK but are no
  // launched ranks: treating them as such would call MPI_Init twice or join a dead job.
  @Test func singletonEnvironmentIsNotLaunched() {
    #expect(!launched(["OMPI_MCA_ess": "singleton", "PMIX_RANK": "0"]))
  }
}
