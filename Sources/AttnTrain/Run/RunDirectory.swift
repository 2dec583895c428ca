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
    let probe = file(".write-test-\(getpid())")
    guard fm.createFile(atPath: probe, contents: Data("ok".utf8)) else {
      throw InputError(file: path, field: origin, problem: "the run directory is not writable", hint: "choose another with --run-dir")
    }
    try? fm.removeItem(atPath: probe)
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
  public func removePartialCheckpoints() throws {
    for partial in checkpoints.partialDirectories() { try removeTree(partial) }
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
