// What every subcommand does before its real work: join the job, read the config, pick the BLAS
// thread count, find the run directory; and the one place where errors are reported.

import AttnCore
import AttnDist
import AttnTrain
import Foundation

struct Launch {
  let communicator: Communicator
  let config: Config
  let run: RunDirectory
  let log: RunLog

  init(_ options: RunOptions) throws {
    // Serialized: the gradient reducer's thread calls MPI while the main thread computes.
    let communicator = try makeCommunicator(threadLevel: .serialized)
    self.communicator = communicator
    log = RunLog(isSpeaker: communicator.rank == 0)
    var config: Config
    do {
      config = try Config.load(path: options.config)
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

  /// Threads per rank: ATTN_TRAIN_THREADS, else training.threads, else the node's cores shared
  /// evenly among the ranks on the node (at least one each).
  /// `announce` receives the one line saying what was chosen (stdout for training; eval and sample
  /// keep stdout for their results).
  func configureThreads(announce: ((String) -> Void)? = nil) throws {
    let cores = ProcessInfo.processInfo.activeProcessorCount
    var threads = max(1, cores / communicator.localSize)
    var source = "\(cores) cores / \(communicator.localSize) ranks on this node"
    if let fromConfig = config.training.threads {
      threads = fromConfig
      source = "training.threads"
    }
    if let text = ProcessInfo.processInfo.environment["ATTN_TRAIN_THREADS"] {
      guard let value = Int(text), value >= 1 else {
        throw InputError(file: "environment", field: "ATTN_TRAIN_THREADS", problem: "\"\(text)\" is not a whole number >= 1")
      }
      threads = value
      source = "ATTN_TRAIN_THREADS"
    }
    ComputeThreads.set(threads)
    (announce ?? log.say)("ranks: \(communicator.size), threads per rank: \(threads) (\(source))")
  }

  func finish() {
    (communicator as? MPICommunicator).map { try? $0.finalize() }
  }
}

/// Runs a subcommand body and reports any error once, as one line, then exits non-zero. Under MPI
/// the failing rank takes the whole job down, so no rank is left waiting in a collective.
func reportingErrors(_ body: (inout Launch?) throws -> Void) -> Never {
  var launch: Launch?
  do {
    try body(&launch)
    launch?.finish()
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
