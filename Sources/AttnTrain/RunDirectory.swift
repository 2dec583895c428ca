// The run directory: config.json (the resolved config of the latest start), vocab.json,
// metrics.jsonl and checkpoints/. Only rank 0 touches it.

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
      throw InputError(file: path, field: origin, problem: "cannot create the run directory: \(Self.reason(error))")
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
    let stamp = ISO8601DateFormatter().string(from: Date()).replacingOccurrences(of: ":", with: "")
    let aside = file("checkpoints-replaced-\(stamp)")
    try atomicRename(from: root, to: aside)
    return aside
  }

  /// Removes what an interrupted checkpoint write left behind.
  public func removePartialCheckpoints() throws {
    for partial in checkpoints.partialDirectories() { try removeTree(partial) }
  }

  static func reason(_ error: Error) -> String {
    (error as NSError).localizedFailureReason ?? (error as NSError).localizedDescription
  }
}
