// The run directory: config.json (the resolved config of the latest start), vocab.json,
// metrics.jsonl, plan.json (what the run is sized to), profile.json (after a --profile run),
// tensorboard/, report.html and checkpoints/. Only rank 0 touches it.

import AttnFormats
import Foundation

public struct RunDirectory: Sendable {
  public let path: String
  /// The config field or option that chose the path, for error messages.
  public let origin: String

  public init(path: String, origin: String) {
    self.path = path
    self.origin = origin
  }

  public func file(_ name: String) -> String { (path as NSString).appendingPathComponent(name) }
  public var checkpoints: CheckpointDirectory { CheckpointDirectory(runDirectory: path) }
  public var metricsFile: String { file("metrics.jsonl") }
  public var planFile: String { file("plan.json") }
  public var profileFile: String { file("profile.json") }
  public var tensorBoardDirectory: String { file("tensorboard") }
  public var reportFile: String { file("report.html") }
  /// Where a learned BPE is kept (data.tokenizer {"kind": "bpe", "vocab_size": N}).
  public var learnedTokenizerFile: String { file("tokenizer.json") }

  /// Where the config's prepared token shards are: data.prepared_dir, or data/ in this directory.
  public func preparedDirectory(for config: Config) -> String { config.data.preparedDirectory ?? file("data") }

  /// Creates the directory if needed and proves it writable before any training time is spent.
  public func prepare() throws {
    let fm = FileManager.default
    var isDirectory: ObjCBool = false
    if fm.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue {
      throw InputError(file: path, field: origin, problem: "exists and is not a directory")
    }
    do {
      try fm.createDirectory(atPath: path, withIntermediateDirectories: true)
    } catch {
      throw InputError(file: path, field: origin, problem: "cannot create the run directory: \(Self.obstacle(to: path) ?? Self.reason(error))")
    }
    // A small write that reaches the disk: a full disk says so here, not at the first checkpoint.
    let probe = file(".write-test-\(getpid())")
    let descriptor = open(probe, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
    var failure = descriptor < 0 ? errno : 0
    if descriptor >= 0 {
      let bytes = [UInt8](repeating: 0x2e, count: 4096)
      if write(descriptor, bytes, bytes.count) != bytes.count || fsync(descriptor) != 0 { failure = errno == 0 ? ENOSPC : errno }
      close(descriptor)
      unlink(probe)
    }
    if failure != 0 {
      throw InputError(
        file: path, field: origin, problem: "cannot write in the run directory: \(String(cString: strerror(failure)))",
        hint: "free space or choose another directory with --run-dir")
    }
  }

  /// The marker a run directory gets when attn-train first uses it. A directory without it that holds
  /// other files is not ours: a run there would overwrite them (config.json, vocab.json), so it is
  /// refused. A run directory of an older version (it has checkpoints/ or metrics.jsonl) is adopted.
  static let marker = ".attn-train-run"

  /// Refuses a directory that holds files attn-train did not put there, and marks it as a run
  /// directory otherwise. Call after prepare().
  public func claim() throws {
    let fm = FileManager.default
    let markerPath = file(Self.marker)
    if fm.fileExists(atPath: markerPath) { return }
    let entries = ((try? fm.contentsOfDirectory(atPath: path)) ?? []).filter { !$0.hasPrefix(".write-test-") && $0 != ".attn-train.lock" }
    let earlierRun = entries.contains("checkpoints") || entries.contains("metrics.jsonl")
    if !entries.isEmpty && !earlierRun {
      let shown = entries.sorted().prefix(5).joined(separator: ", ") + (entries.count > 5 ? ", ..." : "")
      throw InputError(
        file: path, field: origin,
        problem: "holds files attn-train did not create (\(shown)); a run there would overwrite some of them (config.json, vocab.json, metrics.jsonl)",
        hint: "choose a new or empty directory (output.run_dir, or --run-dir)")
    }
    guard fm.createFile(atPath: markerPath, contents: Data("attn-train run directory\n".utf8)) else {
      throw InputError(file: path, field: origin, problem: "cannot write \(Self.marker) there")
    }
  }

  /// Holds the run directory for this process: a second job on the same directory is refused while
  /// this one lives, and the kernel releases the lock when the process ends however it ends, so a
  /// crashed job leaves nothing stuck.
  public func lock() throws -> RunDirectoryLock {
    let lockPath = file(".attn-train.lock")
    let descriptor = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
    guard descriptor >= 0 else {
      throw InputError(file: lockPath, field: origin, problem: "cannot open the run directory's lock: \(String(cString: strerror(errno)))")
    }
    guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
      let holder = (try? String(contentsOfFile: lockPath, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
      close(descriptor)
      throw InputError(
        file: path, field: origin,
        problem: "another job is using this run directory (\(holder.map { $0.isEmpty ? "its lock holder did not say who it is" : $0 } ?? "unknown"))",
        hint: "wait for it to end, or give this run another directory (--run-dir)")
    }
    var host = [CChar](repeating: 0, count: 256)
    gethostname(&host, host.count)
    let who = "pid \(getpid()) on \(String(cString: host)), since \(Self.timestamp())\n"
    _ = ftruncate(descriptor, 0)
    _ = who.withCString { write(descriptor, $0, strlen($0)) }
    return RunDirectoryLock(descriptor: descriptor)
  }

  /// Starting over keeps the old checkpoints: they move to checkpoints-replaced-<time>.
  public func setAsideCheckpoints() throws -> String? {
    let root = checkpoints.root
    guard FileManager.default.fileExists(atPath: root) else { return nil }
    let aside = file("checkpoints-replaced-\(Self.timestamp())")
    try atomicRename(from: root, to: aside)
    return aside
  }

  /// Resuming from an older checkpoint abandons the newer ones: they move to
  /// checkpoints-abandoned-<time>/ so that neither pruning nor a later fallback mixes the two runs.
  public func setAsideCheckpoints(newerThan step: Int) throws -> String? {
    let newer = checkpoints.stepCheckpoints().filter { $0.step > step }
    guard !newer.isEmpty else { return nil }
    let aside = file("checkpoints-abandoned-\(Self.timestamp())")
    try FileManager.default.createDirectory(atPath: aside, withIntermediateDirectories: true)
    for checkpoint in newer {
      try atomicRename(from: checkpoints.path(checkpoint.name), to: (aside as NSString).appendingPathComponent(checkpoint.name))
    }
    return aside
  }

  static func timestamp() -> String {
    ISO8601DateFormatter().string(from: Date()).replacingOccurrences(of: ":", with: "")
  }

  /// Removes what an interrupted checkpoint write left behind.
  /// A crash between the two renames that replace `best` leaves the old one retired and no `best`:
  /// it is put back, not removed.
  public func removePartialCheckpoints() throws {
    for partial in checkpoints.partialDirectories() {
      let entry = (partial as NSString).lastPathComponent
      if entry.hasPrefix(".partial-retired-"), let dash = entry.lastIndex(of: "-") {
        let name = String(entry[entry.index(entry.startIndex, offsetBy: ".partial-retired-".count)..<dash])
        let final = checkpoints.path(name)
        if !name.isEmpty && !FileManager.default.fileExists(atPath: final) {
          try atomicRename(from: partial, to: final)
          continue
        }
      }
      try removeTree(partial)
    }
  }

  /// Why mkdir -p of `path` fails, in the words a user needs: the first ancestor that is a file, or
  /// the system's reason for the first one that cannot be created.
  static func obstacle(to path: String) -> String? {
    var prefix = ""
    for component in (path as NSString).pathComponents {
      prefix = prefix.isEmpty ? component : (prefix as NSString).appendingPathComponent(component)
      var isDirectory: ObjCBool = false
      if FileManager.default.fileExists(atPath: prefix, isDirectory: &isDirectory) {
        if !isDirectory.boolValue { return "\(prefix) is a file, not a directory" }
      } else {
        if mkdir(prefix, 0o755) != 0 { return "\(prefix): \(String(cString: strerror(errno)))" }
        rmdir(prefix)
        return nil
      }
    }
    return nil
  }

  static func reason(_ error: Error) -> String {
    (error as NSError).localizedFailureReason ?? (error as NSError).localizedDescription
  }
}

/// A held run-directory lock; released when this object goes, or when the process ends.
public final class RunDirectoryLock {
  private let descriptor: Int32

  init(descriptor: Int32) { self.descriptor = descriptor }

  deinit { close(descriptor) }
}
