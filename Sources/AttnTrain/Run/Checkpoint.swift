// Checkpoints: one directory per saved step under <run_dir>/checkpoints/, written so that a crash at
// any moment leaves only whole checkpoints behind:
//   1. every file goes into checkpoints/.partial-step-NNNNNNN-PID/ and is fsynced;
//   2. that directory is renamed to step-NNNNNNN (atomic) and its parent fsynced;
//   3. the `latest` file is replaced atomically with the new name; old step-* beyond keep_checkpoints
//      are removed. `best` (the best dev figure so far, training.best_metric) is replaced the same way and never pruned.
// A checkpoint holds model.safetensors (parameters by name), optimizer.safetensors (state per
// parameter, "<state>.<name>"), trainer.json (step, counters, timing), config.json, vocab.json, and
// manifest.json (SHA-256 of each). Loading checks the manifest before trusting any byte.
// CheckpointWriter.swift writes one, LoadedCheckpoint.swift reads and verifies one.

import AttnFormats
import Foundation

/// trainer.json: where the run stands.
public struct TrainerState: Equatable, Sendable {
  /// Optimizer steps completed; the next step to run has this 0-based index.
  public var step: Int
  public var tokensSeen: Int
  public var elapsedSeconds: Double
  public var bestDevLoss: Double?
  /// A classifier's figures at the best step (best by training.best_metric).
  public var bestDevAccuracy: Double?
  public var bestDevMacroF1: Double?
  public var bestStep: Int?
  /// Evaluations since the best one, which early stopping (training.patience) counts.
  public var evaluationsSinceBest = 0
  /// Steps skipped for a non-finite loss or gradient: in all, and in a row up to this step
  /// (training.max_skipped_steps).
  public var skippedSteps = 0
  public var skippedInARow = 0
  /// How many processes wrote it (informational: resuming at another count is allowed).
  public var worldSize: Int
  /// What the run trained on (nil in checkpoints of earlier versions): a resume compares it.
  public var data: DataFingerprint?
  public var formatVersion: Int = 1

  public init(
    step: Int, tokensSeen: Int, elapsedSeconds: Double, bestDevLoss: Double? = nil, bestStep: Int? = nil,
    worldSize: Int
  ) {
    self.step = step
    self.tokensSeen = tokensSeen
    self.elapsedSeconds = elapsedSeconds
    self.bestDevLoss = bestDevLoss
    self.bestStep = bestStep
    self.worldSize = worldSize
  }

  public var json: JSONValue {
    .object([
      (key: "step", value: JSONValue(integer: step)), (key: "tokens_seen", value: JSONValue(integer: tokensSeen)),
      (key: "elapsed_s", value: JSONValue(number: elapsedSeconds)),
      (key: "best_dev_loss", value: bestDevLoss.map(JSONValue.init(number:)) ?? .null),
      (key: "best_dev_accuracy", value: bestDevAccuracy.map(JSONValue.init(number:)) ?? .null),
      (key: "best_dev_macro_f1", value: bestDevMacroF1.map(JSONValue.init(number:)) ?? .null),
      (key: "best_step", value: bestStep.map(JSONValue.init(integer:)) ?? .null),
      (key: "evaluations_since_best", value: JSONValue(integer: evaluationsSinceBest)),
      (key: "skipped_steps", value: JSONValue(integer: skippedSteps)),
      (key: "skipped_in_a_row", value: JSONValue(integer: skippedInARow)),
      (key: "world_size", value: JSONValue(integer: worldSize)),
      (key: "data", value: data?.json ?? .null),
      (key: "format_version", value: JSONValue(integer: formatVersion)),
    ])
  }

  /// Reads trainer.json; a missing or mistyped field is an error naming it.
  public init(json: JSONValue) throws {
    let object = try JSONObject(json)
    step = try object.int("step")
    tokensSeen = try object.int("tokens_seen")
    elapsedSeconds = try object.double("elapsed_s")
    bestDevLoss = try object.optionalDouble("best_dev_loss")
    bestDevAccuracy = try object.optionalDouble("best_dev_accuracy")
    bestDevMacroF1 = try object.optionalDouble("best_dev_macro_f1")
    bestStep = try object.optionalInt("best_step")
    evaluationsSinceBest = try object.optionalInt("evaluations_since_best") ?? 0
    skippedSteps = try object.optionalInt("skipped_steps") ?? 0
    skippedInARow = try object.optionalInt("skipped_in_a_row") ?? 0
    worldSize = try object.int("world_size")
    if let value = object["data"], value != .null { data = try DataFingerprint(json: object.object("data")) }
    formatVersion = try object.int("format_version")
    guard formatVersion == 1 else {
      throw JSONFieldError(field: "format_version", "is \(formatVersion); this attn-train reads version 1")
    }
    guard step >= 0, tokensSeen >= 0, worldSize >= 1, elapsedSeconds >= 0, skippedSteps >= 0, skippedInARow >= 0 else {
      throw JSONFieldError(field: "", "step, tokens_seen, elapsed_s and the skipped counts must be >= 0 and world_size >= 1")
    }
  }
}

public struct CheckpointDirectory: Sendable {
  public static let modelFile = "model.safetensors"
  public static let optimizerFile = "optimizer.safetensors"
  public static let trainerFile = "trainer.json"
  public static let configFile = "config.json"
  public static let vocabularyFile = "vocab.json"
  public static let manifestFile = "manifest.json"
  static let contentFiles = [modelFile, optimizerFile, trainerFile, configFile, vocabularyFile]

  public let root: String  // <run_dir>/checkpoints

  public init(runDirectory: String) {
    root = (runDirectory as NSString).appendingPathComponent("checkpoints")
  }

  init(root: String) { self.root = root }

  public func path(_ name: String) -> String { (root as NSString).appendingPathComponent(name) }

  /// A checkpoint the user named: "step-0000500", "best" or "latest" in this directory, or a path.
  public func resolve(_ name: String) -> String {
    Self.followingLatestPointer(name.contains("/") ? name : path(name))
  }

  /// `latest` is a file naming a checkpoint, not one itself; a user who names it means the one it names.
  public static func followingLatestPointer(_ path: String) -> String {
    var isDirectory: ObjCBool = false
    guard (path as NSString).lastPathComponent == "latest",
      FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue,
      let name = CheckpointDirectory(root: (path as NSString).deletingLastPathComponent).latestName(),
      !name.contains("/")
    else { return path }
    return ((path as NSString).deletingLastPathComponent as NSString).appendingPathComponent(name)
  }
  public var latestPointer: String { path("latest") }

  public static func name(forStep step: Int) -> String { String(format: "step-%07d", step) }

  /// Saved checkpoints by step, newest first (not `best`, not partial directories).
  public func stepCheckpoints() -> [(name: String, step: Int)] {
    let entries = (try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []
    return entries.compactMap { entry -> (String, Int)? in
      guard entry.hasPrefix("step-"), let step = Int(entry.dropFirst(5)) else { return nil }
      return (entry, step)
    }.sorted { $0.1 > $1.1 }
  }

  public func latestName() -> String? {
    guard let data = FileManager.default.contents(atPath: latestPointer) else { return nil }
    let name = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    return name.isEmpty ? nil : name
  }

  /// Leftovers of writes that a crash interrupted; never read, removed at start.
  public func partialDirectories() -> [String] {
    let entries = (try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []
    return entries.filter { $0.hasPrefix(".partial-") }.map(path)
  }
}
