// What every subcommand does before its real work: join the job, read the config, pick the thread
// count, find the run directory; and the one place where errors are reported. The only code that
// reads the command line and the environment.

import AttnCore
import AttnDist
import AttnFormats
import AttnTrain
import Foundation

struct Launch {
  let communicator: Communicator
  let config: Config
  let run: RunDirectory
  let log: RunLog

  init(_ options: RunOptions) throws {
    // Serialized: the data-parallel step's thread communicates while the main thread computes.
    let communicator = try makeCommunicator(environment: ProcessInfo.processInfo.environment, threadSupport: .serialized)
    self.communicator = communicator
    log = RunLog(isSpeaker: communicator.rank == 0)
    var config: Config
    do {
      config = try Config.load(path: options.config, warn: log.warn)
    } catch {
      // Every rank has joined the job: report once, from rank 0, and end the job (see below).
      throw FailedAfterJoining(communicator: communicator, error: error)
    }
    if let override = options.runDirectory {
      config.output.runDir = URL(fileURLWithPath: override).standardizedFileURL.path
      run = RunDirectory(path: config.output.runDir, origin: "--run-dir")
    } else {
      run = RunDirectory(path: config.output.runDir, origin: "output.run_dir")
    }
    self.config = config
  }

  /// Sizes the compute threads (see ThreadChoice) and says what was chosen through `announce`
  /// (stdout for training; eval and sample keep stdout for their results).
  func configureThreads(announce: ((String) -> Void)? = nil) throws {
    let choice = try ThreadChoice(
      config: config, communicator: communicator, cores: ProcessInfo.processInfo.activeProcessorCount,
      override: ProcessInfo.processInfo.environment["ATTN_TRAIN_THREADS"])
    choice.apply()
    (announce ?? log.say)(choice.line)
  }

  /// The faults the end-to-end tests ask for through ATTN_TRAIN_TEST_* variables.
  var faults: FaultInjection { FaultInjection(environment: ProcessInfo.processInfo.environment) }
}

/// Runs a subcommand body and reports any error once, as one line, then exits non-zero. Under MPI
/// the failing rank takes the whole job down, so no rank is left waiting in a collective.
func reportingErrors(_ body: (inout Launch?) throws -> Void) -> Never {
  var launch: Launch?
  do {
    try body(&launch)
    try? launch?.communicator.finalize()
    exit(0)
  } catch var error {
    var communicator = launch?.communicator
    if let failed = error as? FailedAfterJoining {
      communicator = failed.communicator
      error = failed.error
    }
    let rank = communicator?.rank ?? 0
    let size = communicator?.size ?? 1
    if rank != 0 {
      // If rank 0 failed the same way (a config error, diverged replicas), it reports and aborts
      // the job; give mpirun time to end this rank first so the error is printed once. Its abort
      // takes about 2 s here (SIGCONT, 1 s, SIGTERM, 1 s, SIGKILL: odls_base_sigkill_timeout).
      // An error on this rank alone is then reported 3 s late, still well inside a prompt end.
      Thread.sleep(forTimeInterval: 3)
    }
    let prefix = size > 1 ? "attn-train (rank \(rank) of \(size)): error: " : "attn-train: error: "
    FileHandle.standardError.write(Data((prefix + "\(error)\n").utf8))
    if let communicator, size > 1 { communicator.abort(code: 1) }
    exit(1)
  }
}

/// An error thrown by `Launch.init` after MPI started, carrying the communicator so the error is
/// reported like any other: once, from rank 0, then the job is aborted.
struct FailedAfterJoining: Error, @unchecked Sendable {
  let communicator: Communicator
  let error: Error
}
