// What the MPI, resume and fault tests need beyond Harness: a job running in the background whose
// output can be watched line by line and which can be signalled; the pids of its ranks (read from
// /proc, so the tests never kill by name); a launcher that turns SIGTERM into the SIGUSR1 mpirun
// forwards; and small readers for a run directory. MPIEndToEnd is the one serialized parent suite:
// the machine has 2 cores, and jobs that overlap would slow each other past the tests' time limits.

import AttnTrain
import Foundation
import Testing

@Suite(.serialized) struct MPIEndToEnd {}

/// A child process whose stdout and stderr are collected as they arrive, and which can be signalled.
/// It is started with posix_spawn and an empty signal mask: Foundation's Process hands a child the
/// mask of the thread that starts it, and the test runner's threads block almost every signal, so
/// an mpirun started that way never sees the SIGTERM a test sends it (measured: SigBlk
/// fffffffe3bfaea27 in /proc/PID/status).
final class BackgroundJob: @unchecked Sendable {
  let pid: pid_t
  let started = Date()
  private let lock = NSLock()
  private var out = Data()
  private var err = Data()
  private var readers: [Thread] = []
  private var status: Int32?

  init(_ executable: String, _ arguments: [String], environment: [String: String] = [:]) throws {
    var outPipe: [Int32] = [0, 0]
    var errPipe: [Int32] = [0, 0]
    guard pipe(&outPipe) == 0, pipe(&errPipe) == 0 else {
      throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO)
    }
    // Close-on-exec, so children that other tests start meanwhile do not hold these pipes open.
    for fd in outPipe + errPipe { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_adddup2(&actions, outPipe[1], 1)
    posix_spawn_file_actions_adddup2(&actions, errPipe[1], 2)
    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    defer { posix_spawnattr_destroy(&attributes) }
    var none = sigset_t()
    sigemptyset(&none)
    var all = sigset_t()
    sigfillset(&all)
    posix_spawnattr_setsigmask(&attributes, &none)
    posix_spawnattr_setsigdefault(&attributes, &all)
    posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

    let argv = ([executable] + arguments).map { strdup($0) } + [nil]
    let envp = Harness.cleanEnvironment(environment).map { strdup("\($0.key)=\($0.value)") } + [nil]
    defer { for p in argv + envp { free(p) } }
    var child: pid_t = 0
    let rc = posix_spawn(&child, executable, &actions, &attributes, argv, envp)
    close(outPipe[1])
    close(errPipe[1])
    guard rc == 0 else {
      close(outPipe[0])
      close(errPipe[0])
      throw POSIXError(POSIXErrorCode(rawValue: rc) ?? .EIO)
    }
    pid = child
    for (fd, isOut) in [(outPipe[0], true), (errPipe[0], false)] {
      let reader = Thread { [self] in
        let handle = FileHandle(fileDescriptor: fd, closeOnDealloc: true)
        while true {
          let chunk = handle.availableData
          if chunk.isEmpty { break }
          lock.withLock { if isOut { out.append(chunk) } else { err.append(chunk) } }
        }
      }
      reader.start()
      readers.append(reader)
    }
  }

  /// `mpirun -np N attn-train arguments` in the background.
  static func mpirun(_ ranks: Int, _ arguments: [String], environment: [String: String] = [:]) throws -> BackgroundJob {
    try BackgroundJob(
      "/usr/bin/mpirun", ["--allow-run-as-root", "--oversubscribe", "-np", "\(ranks)", Harness.binary] + arguments,
      environment: environment)
  }

  var stdout: String { lock.withLock { String(decoding: out, as: UTF8.self) } }
  var stderr: String { lock.withLock { String(decoding: err, as: UTF8.self) } }
  var output: String { stdout + stderr }

  /// Reaps the child if it has ended; its status is kept (exit code, or 128 + signal).
  var isRunning: Bool {
    if status != nil { return false }
    var raw: Int32 = 0
    guard waitpid(pid, &raw, WNOHANG) == pid else { return true }
    let signal = raw & 0x7f
    status = signal == 0 ? (raw >> 8) & 0xff : 128 + signal
    return false
  }

  /// Waits until stdout or stderr contains `text`; false if the job ended or time ran out first.
  func waitFor(_ text: String, timeout: Double = 60) -> Bool {
    waitUntil(timeout: timeout) { output.contains(text) }
  }

  /// Polls `condition` until it holds; false if the job ended or time ran out first.
  func waitUntil(timeout: Double = 60, _ condition: () -> Bool) -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
      if condition() { return true }
      if !isRunning { return condition() }
      Thread.sleep(forTimeInterval: 0.005)
    }
    return false
  }

  func signal(_ number: Int32) { kill(pid, number) }

  /// The exit status once the job ends (nil if it is still running after `timeout` seconds, in
  /// which case it is killed with its ranks so nothing outlives the test).
  func waitForExit(timeout: Double = 120) -> Int32? {
    let deadline = Date().addingTimeInterval(timeout)
    while isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.01) }
    let timedOut = isRunning
    if timedOut {
      for rank in MPIProcesses.ranks(under: pid).values { kill(rank, SIGKILL) }
      kill(pid, SIGKILL)
      while isRunning { Thread.sleep(forTimeInterval: 0.01) }
    }
    for reader in readers { while !reader.isFinished { Thread.sleep(forTimeInterval: 0.01) } }
    return timedOut ? nil : status
  }
}

/// Ranks found through /proc: every descendant of a launcher whose environment carries
/// OMPI_COMM_WORLD_RANK.
enum MPIProcesses {
  static func ranks(under root: Int32) -> [Int: Int32] {
    var children: [Int32: [Int32]] = [:]
    for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
      guard let pid = Int32(entry), let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8),
        let close = stat.lastIndex(of: ")")
      else { continue }
      // "pid (comm) state ppid ...": comm may hold spaces, so split after the last ')'.
      let fields = stat[stat.index(after: close)...].split(separator: " ")
      if fields.count > 1, let parent = Int32(fields[1]) { children[parent, default: []].append(pid) }
    }
    var result: [Int: Int32] = [:]
    var queue = children[root] ?? []
    while let pid = queue.popLast() {
      queue += children[pid] ?? []
      if let rank = environment(of: pid)["OMPI_COMM_WORLD_RANK"].flatMap(Int.init) { result[rank] = pid }
    }
    return result
  }

  /// Whether `pid` exists and is not a zombie.
  static func isRunning(_ pid: Int32) -> Bool {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
      let close = stat.lastIndex(of: ")")
    else { return false }
    return stat[stat.index(after: close)...].split(separator: " ").first != "Z"
  }

  static func environment(of pid: Int32) -> [String: String] {
    guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/environ") else { return [:] }
    var result: [String: String] = [:]
    for entry in data.split(separator: 0) {
      let text = String(decoding: entry, as: UTF8.self)
      if let equals = text.firstIndex(of: "=") {
        result[String(text[..<equals])] = String(text[text.index(after: equals)...])
      }
    }
    return result
  }
}

enum RunFiles {
  static func checkpoints(_ run: String) -> CheckpointDirectory { CheckpointDirectory(runDirectory: run) }

  static func latest(_ run: String) -> String? { checkpoints(run).latestName() }

  /// Names under <run>/checkpoints, sorted.
  static func entries(_ run: String) -> [String] {
    ((try? FileManager.default.contentsOfDirectory(atPath: checkpoints(run).root)) ?? []).sorted()
  }

  static func partials(_ run: String) -> [String] { entries(run).filter { $0.hasPrefix(".partial-") } }

  static func bytes(_ run: String, _ checkpoint: String, _ file: String) -> Data? {
    FileManager.default.contents(atPath: checkpoints(run).path(checkpoint) + "/" + file)
  }

  /// dev_loss by step from metrics.jsonl.
  static func devLosses(_ run: String) throws -> [Int: Double] {
    var result: [Int: Double] = [:]
    for record in try Harness.metrics(runDirectory: run) {
      if let step = record["step"], let loss = record["dev_loss"] { result[Int(step)] = loss }
    }
    return result
  }

  /// A copy of a run directory, so one checkpoint can be resumed several ways.
  static func copy(_ run: String, to destination: String) throws {
    try? FileManager.default.removeItem(atPath: destination)
    try FileManager.default.copyItem(atPath: run, toPath: destination)
  }

  /// The largest relative difference between two loss curves over `steps`; every step must exist.
  static func largestRelativeDifference(_ a: [Int: Double], _ b: [Int: Double], steps: ClosedRange<Int>) -> Double {
    var worst = 0.0
    for step in steps {
      guard let x = a[step], let y = b[step] else { return .infinity }
      worst = max(worst, abs(x - y) / max(abs(x), abs(y), 1e-12))
    }
    return worst
  }
}

/// The launcher recipe for stopping a job cleanly: mpirun cannot forward SIGTERM or SIGINT (it
/// answers them by killing the ranks a second later and exiting 1), but it forwards SIGUSR1, which
/// attn-train treats like SIGTERM. So the launcher runs mpirun in its own process group (`set -m`:
/// a terminal's Ctrl-C then reaches only the launcher; stdin from /dev/null, as a background group
/// must not read the terminal), turns its own SIGTERM/SIGINT into SIGUSR1 for mpirun, and exits
/// with mpirun's status. launch/mpirun.sh should carry the same lines.
/// launch/mpirun.sh: the launcher users run, which turns SIGTERM/SIGINT into SIGUSR1 for mpirun.
enum Launcher {
  static let script = Harness.repository.appendingPathComponent("launch/mpirun.sh").path
  /// The launcher runs the binary this test run built.
  static let environment = ["ATTN_TRAIN": Harness.binary]
}

/// Python's reference safetensors reader, for the test that checkpoints open outside Swift.
enum Python {
  static let canLoadSafetensors: Bool = {
    let result = try? Harness.run("/usr/bin/env", ["python3", "-c", "import numpy, safetensors.numpy"], timeout: 60)
    return result?.status == 0
  }()

  struct Tensor: Decodable {
    let shape: [Int]
    let dtype: String
    let sum: Double
  }

  /// Each file's tensors as `safetensors.numpy.load_file` sees them.
  static func loadSafetensors(_ files: [String]) throws -> [String: [String: Tensor]] {
    let script = """
      import json, sys
      from safetensors.numpy import load_file
      out = {}
      for path in sys.argv[1:]:
          out[path] = {name: {"shape": list(a.shape), "dtype": str(a.dtype), "sum": float(a.astype("float64").sum())}
                       for name, a in load_file(path).items()}
      print(json.dumps(out))
      """
    let result = try Harness.run("/usr/bin/env", ["python3", "-c", script] + files, timeout: 60)
    guard result.status == 0 else {
      throw InputError(file: files.joined(separator: ", "), problem: "Python could not load them:\n\(result.output)")
    }
    return try JSONDecoder().decode([String: [String: Tensor]].self, from: Data(result.stdout.utf8))
  }
}
