// The one way the tests start another program (attn-train, mpirun, the launcher, python3), built so
// that no test can hang the suite:
// - The child gets /dev/null for stdin and nothing else of ours (see CSpawn): every descriptor
//   above stderr is closed in it, and our pipes are close-on-exec from birth. The test process
//   holds `swift test`'s output pipes, and a grandchild that kept one of them (an orphaned MPI
//   rank, say) would keep `swift test` waiting for end-of-file after every test had finished.
// - Signals are unblocked and at their defaults in the child. Foundation's Process hands a child the
//   mask of the thread that starts it, and the test runner's threads block almost every signal, so
//   an mpirun started that way never sees the SIGTERM a test sends it (measured: SigBlk
//   fffffffe3bfaea27 in /proc/PID/status).
// - Every wait has a time limit. A child still running at its limit, or dropped while running, is
//   killed together with all its descendants (mpirun's ranks would outlive mpirun otherwise), and
//   reading what it wrote stops at a limit too, so a descendant that escaped cannot stall a test.

import CSpawn
import Foundation

#if canImport(Glibc)
import Glibc
#endif

public final class ChildProcess: @unchecked Sendable {
  public let pid: pid_t
  public let started = Date()
  private let collected: Collected
  private var readers: [Thread] = []
  private var status: Int32?
  /// True once the child was killed for running past a time limit.
  public private(set) var timedOut = false

  /// Starts `executable arguments` with exactly `environment`.
  public init(_ executable: String, _ arguments: [String], environment: [String: String]) throws {
    let argv = ([executable] + arguments).map { strdup($0) } + [nil]
    let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
    defer { for p in argv + envp { free(p) } }
    var child: pid_t = 0
    var outFD: Int32 = -1
    var errFD: Int32 = -1
    let rc = cspawn_child(executable, argv, envp, &child, &outFD, &errFD)
    guard rc == 0 else { throw POSIXError(POSIXErrorCode(rawValue: rc) ?? .EIO) }
    pid = child
    // The readers hold only the buffers, so dropping the job runs deinit, which kills a live child.
    let collected = Collected()
    self.collected = collected
    for (fd, isOut) in [(outFD, true), (errFD, false)] {
      let reader = Thread {
        let handle = FileHandle(fileDescriptor: fd, closeOnDealloc: true)
        while true {
          let chunk = handle.availableData
          if chunk.isEmpty { break }
          collected.append(chunk, toStdout: isOut)
        }
      }
      reader.start()
      readers.append(reader)
    }
  }

  deinit {
    if isRunning { killTree() }
  }

  /// Runs `executable arguments` to its end, or kills it (and its descendants) after `timeout` s.
  public static func run(
    _ executable: String, _ arguments: [String], environment: [String: String], timeout: Double
  ) throws -> Finished {
    let child = try ChildProcess(executable, arguments, environment: environment)
    let status = child.waitForExit(timeout: timeout)
    return Finished(
      status: status ?? 128 + SIGKILL, timedOut: status == nil, stdout: child.stdout, stderr: child.stderr,
      seconds: Date().timeIntervalSince(child.started))
  }

  public struct Finished: Sendable {
    /// The exit code, or 128 + the signal that ended it.
    public let status: Int32
    /// The child ran past its time limit and was killed.
    public let timedOut: Bool
    public let stdout: String
    public let stderr: String
    public let seconds: Double
    /// Both streams, with a line saying so when the child was killed at its limit.
    public var output: String {
      stdout + stderr + (timedOut ? "\n[killed with its descendants after \(Int(seconds)) s: time limit]\n" : "")
    }
  }

  public var stdout: String { collected.text(stdout: true) }
  public var stderr: String { collected.text(stdout: false) }
  public var output: String { stdout + stderr }

  /// Reaps the child if it has ended; its status is kept (exit code, or 128 + signal).
  public var isRunning: Bool {
    if status != nil { return false }
    var raw: Int32 = 0
    guard waitpid(pid, &raw, WNOHANG) == pid else { return true }
    let signal = raw & 0x7f
    status = signal == 0 ? (raw >> 8) & 0xff : 128 + signal
    return false
  }

  public func signal(_ number: Int32) { kill(pid, number) }

  /// Waits until stdout or stderr contains `text`; false if the child ended or time ran out first.
  public func waitFor(_ text: String, timeout: Double = 60) -> Bool {
    waitUntil(timeout: timeout) { output.contains(text) }
  }

  /// Polls `condition` until it holds; false if the child ended or time ran out first.
  public func waitUntil(timeout: Double = 60, _ condition: () -> Bool) -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
      if condition() { return true }
      if !isRunning { return condition() }
      Thread.sleep(forTimeInterval: 0.005)
    }
    return false
  }

  /// The exit status once the child ends, or nil if it was still running after `timeout` seconds,
  /// in which case it is killed with its descendants. Then waits (10 s at most) for the output a
  /// descendant may still be writing.
  public func waitForExit(timeout: Double = 120) -> Int32? {
    let deadline = Date().addingTimeInterval(timeout)
    while isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.01) }
    if isRunning {
      timedOut = true
      killTree()
    }
    let drained = Date().addingTimeInterval(10)
    while readers.contains(where: { !$0.isFinished }) && Date() < drained { Thread.sleep(forTimeInterval: 0.01) }
    return timedOut ? nil : status
  }

  /// SIGKILL to every descendant (found before any of them dies and is re-parented) and the child.
  private func killTree() {
    for descendant in ProcessTree.descendants(of: pid) { kill(descendant, SIGKILL) }
    kill(pid, SIGKILL)
    while isRunning { Thread.sleep(forTimeInterval: 0.01) }
  }
}

/// What the child wrote so far, shared with the reader threads.
private final class Collected: @unchecked Sendable {
  private let lock = NSLock()
  private var out = Data()
  private var err = Data()

  func append(_ chunk: Data, toStdout: Bool) {
    lock.withLock { if toStdout { out.append(chunk) } else { err.append(chunk) } }
  }

  func text(stdout: Bool) -> String {
    lock.withLock { String(decoding: stdout ? out : err, as: UTF8.self) }
  }
}
