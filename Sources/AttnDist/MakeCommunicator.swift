// Picks the communicator from how the process was started: MPI only under a launcher (mpirun,
// srun, hydra), so a plain `attn-train` run never initializes MPI, and a run under mpirun never
// silently trains alone. The caller hands in the process's environment (the library reads none).

/// An `MPICommunicator` when an MPI launcher started this process (as its `environment` shows),
/// otherwise a `SingleProcessCommunicator`. Call it once per process: MPI can be initialized only
/// once. The caller owns the ending: `finalize()` before a successful exit, `abort(code:)` on an error.
public func makeCommunicator(environment: [String: String], threadSupport: ThreadSupport = .funneled) throws
  -> Communicator
{
  if launchedByMPILauncher(environment: { environment[$0] }) {
    return try MPICommunicator(threadSupport: threadSupport)
  }
  return SingleProcessCommunicator()
}

/// Whether the environment is one an MPI launcher gives each rank it starts: mpirun sets
/// OMPI_COMM_WORLD_SIZE, PMIx launchers (srun, prterun) PMIX_RANK, PMI-1/2 launchers (MPICH's hydra)
/// PMI_RANK. A process that called MPI_Init as a singleton (a test) gains PMIX_RANK too, but marks
/// itself with OMPI_MCA_ess=singleton (mpirun's ranks carry "^singleton"); that process and the
/// children it starts are not launched ranks, and must not try to join that singleton's job.
func launchedByMPILauncher(environment: (String) -> String?) -> Bool {
  if environment("OMPI_MCA_ess") == "singleton" { return false }
  return ["OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK"].contains { environment($0) != nil }
}
