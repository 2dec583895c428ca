// What every command does around its real work: join the job, read the config, size the compute
// threads, find the run directory; and the one place where errors are reported. The only code that
// reads the command line and the environment.

import AttnCore
import AttnDist
import AttnFormats
import AttnTrain
import Foundation

struct Launch {
  /// The job's communicator; in a multi-rank job, watched (RankActivity) by the collective watchdog.
  let communicator: Communicator
  let activity: RankActivity?
  private let watchdog: CollectiveWatchdog?
  let config: Config
  let run: RunDirectory
  let log: RunLog
  /// The faults the end-to-end tests ask for through ATTN_TRAIN_TEST_* variables; none otherwise.
  let faults = FaultInjection(environment: ProcessInfo.processInfo.environment)
  /// Where MFU's per-core peak comes from: ATTN_TRAIN_PEAK_FLOPS_PER_CORE, else the probe, cached in
  /// $XDG_CACHE_HOME/attn-train (or ~/.cache/attn-train).
  let peak: MachinePeak.Source

  /// Where the line that says how many threads each rank runs goes: stdout while training, stderr
  /// for commands whose stdout is their result.
  enum ThreadsLine { case stdout, stderr }

  /// Joins the job, prepares the launch and runs `body`, then ends the process: status 0, or 1 after
  /// reporting the error once. Under MPI a failing rank takes the whole job down, so no rank is
  /// left waiting in a collective.
  static func run(_ options: RunOptions, threadsLine: ThreadsLine = .stdout, _ body: (Launch) throws -> Void) -> Never {
    var communicator: Communicator?
    do {
      // Serialized: the data-parallel step's thread communicates while the main thread computes.
      let joined = try makeCommunicator(environment: ProcessInfo.processInfo.environment, threadSupport: .serialized)
      communicator = joined
      let launch = try Launch(options, communicator: joined)
      defer { launch.watchdog?.stop() }
      try launch.sizeComputeThreads(announce: threadsLine == .stdout ? launch.log.say : launch.log.note)
      try body(launch)
      try? joined.finalize()
      exit(0)
    } catch {
      report(error, communicator: communicator)
    }
  }

  private init(_ options: RunOptions, communicator joined: Communicator) throws {
    log = RunLog(isSpeaker: joined.rank == 0, isTerminal: Self.stdoutIsTerminal(underMPI: joined.size > 1))
    let log = self.log
    var config = try Config.load(path: options.config, warn: log.warn)
    if let override = options.runDirectory {
      config.output.runDir = URL(fileURLWithPath: override).standardizedFileURL.path
      run = RunDirectory(path: config.output.runDir, origin: "--run-dir")
    } else {
      run = RunDirectory(path: config.output.runDir, origin: "output.run_dir")
    }
    self.config = config
    peak = try Self.peakSource(ProcessInfo.processInfo.environment)
    // Every rank reads the same config, so every rank makes the same choice (the watchdog's start
    // is a collective).
    let training = config.training
    if joined.size > 1 && training.deadlineSeconds > 0 {
      let activity = RankActivity()
      let prefix = "attn-train (rank \(joined.rank) of \(joined.size)): "
      watchdog = try CollectiveWatchdog(
        communicator: joined, activity: activity,
        policy: DeadlinePolicy(
          seconds: training.deadlineSeconds, stepMultiple: training.deadlineStepMultiple,
          startupSeconds: training.deadlineStartupSeconds, slowWorkSeconds: training.deadlineSlowWorkSeconds),
        report: { FileHandle.standardError.write(Data((prefix + $0 + "\n").utf8)) })
      (self.activity, communicator) = (activity, WatchedCommunicator(joined, activity: activity))
    } else {
      (activity, watchdog, communicator) = (nil, nil, joined)
    }
  }

  /// Whether a person watches stdout. mpirun gives its ranks a pseudo-terminal even when its own
  /// output goes to a file (a Slurm log), so under MPI the answer is whether mpirun's stdout, our
  /// parent's, is a terminal; a rank on another host (whose parent's output goes to ssh) says no.
  private static func stdoutIsTerminal(underMPI: Bool) -> Bool {
    guard isatty(STDOUT_FILENO) != 0 else { return false }
    guard underMPI else { return true }
    let target = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(getppid())/fd/1")) ?? ""
    return target.hasPrefix("/dev/pts/") || target.hasPrefix("/dev/tty")
  }

  private static func peakSource(_ environment: [String: String]) throws -> MachinePeak.Source {
    if let given = environment["ATTN_TRAIN_PEAK_FLOPS_PER_CORE"] {
      guard let value = Double(given), value.isFinite, value > 0 else {
        throw InputError(
          file: "environment", field: "ATTN_TRAIN_PEAK_FLOPS_PER_CORE", problem: "\"\(given)\" is not a positive number of FLOP/s")
      }
      return MachinePeak.Source(cacheFile: nil, perCore: value)
    }
    let cacheRoot =
      environment["XDG_CACHE_HOME"].flatMap { $0.isEmpty ? nil : $0 }
      ?? environment["HOME"].map { ($0 as NSString).appendingPathComponent(".cache") }
    return MachinePeak.Source(
      cacheFile: cacheRoot.map { ($0 as NSString).appendingPathComponent("attn-train/peak-flops.json") }, perCore: nil)
  }

  /// Sizes the compute threads (see ThreadChoice) and says what was chosen.
  private func sizeComputeThreads(announce: (String) -> Void) throws {
    let choice = try ThreadChoice(
      config: config, communicator: communicator, cores: ProcessInfo.processInfo.activeProcessorCount,
      override: ProcessInfo.processInfo.environment["ATTN_TRAIN_THREADS"])
    choice.apply()
    announce(choice.line)
    if let warning = choice.oversubscription { log.warn(warning) }
  }

  /// Reports `error` as one line and exits 1, aborting the job under MPI.
  private static func report(_ error: Error, communicator: Communicator?) -> Never {
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
