// Checkpoints: one directory per saved step under <run_dir>/checkpoints/, written so that a crash at
// any moment leaves only whole checkpoints behind:
//   1. every file goes into checkpoints/.partial-step-NNNNNNN-PID/ and is fsynced;
//   2. that directory is renamed to step-NNNNNNN (atomic) and its parent fsynced;
//   3. the `latest` file is replaced atomically with the new name; old step-* beyond keep_checkpoints
//      are removed. `best` (the lowest dev loss so far) is replaced the same way and never pruned.
// A checkpoint holds model.safetensors (parameters by name), optimizer.safetensors (state per
// parameter, "<state>.<name>"), trainer.json (step, counters, timing), config.json, vocab.json, and
// manifest.json (SHA-256 of each). Loading checks the manifest before trusting any byte.

import AttnCore
import Foundation

public struct TrainerState: Codable, Equatable, Sendable {
  /// Optimizer steps completed; the next step to run has this 0-based index.
  public var step: Int
  public var tokensSeen: Int
  public var elapsedSeconds: Double
  public var bestDevLoss: Double?
  public var bestStep: Int?
  /// How many processes wrote it (informational: resuming at another count is allowed).
  public var worldSize: Int
  public var formatVersion: Int = 1

  enum CodingKeys: String, CodingKey {
    case step, tokensSeen = "tokens_seen", elapsedSeconds = "elapsed_s", bestDevLoss = "best_dev_loss"
    case bestStep = "best_step", worldSize = "world_size", formatVersion = "format_version"
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

  public func path(_ name: String) -> String { (root as NSString).appendingPathComponent(name) }
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

// MARK: - Writing

public struct CheckpointWriter {
  public let directory: CheckpointDirectory
  public let keep: Int
  /// Test hook: a pause between files, so a test can kill the process mid-write.
  let pauseBetweenFiles: Double

  public init(directory: CheckpointDirectory, keep: Int) {
    self.directory = directory
    self.keep = keep
    pauseBetweenFiles = Double(ProcessInfo.processInfo.environment["ATTN_TRAIN_TEST_CHECKPOINT_PAUSE_S"] ?? "") ?? 0
  }

  /// Writes a complete checkpoint named `name` ("step-NNNNNNN" or "best"), replacing an older one of
  /// the same name only after the new one is whole.
  public func write(
    name: String, model: GPT, optimizer: Optimizer, state: TrainerState, configJSON: String,
    vocabularyJSON: String
  ) throws {
    let fm = FileManager.default
    try fm.createDirectory(atPath: directory.root, withIntermediateDirectories: true)
    let partial = directory.path(".partial-\(name)-\(getpid())")
    try removeTree(partial)
    try fm.createDirectory(atPath: partial, withIntermediateDirectories: false)
    func file(_ name: String) -> String { (partial as NSString).appendingPathComponent(name) }

    var weights = SafeTensorsWriter(metadata: ["format": "pt", "written_by": "attn-train", "step": "\(state.step)"])
    for tensor in model.layout.tensors {
      weights.add(tensor.name, shape: tensor.shape, UnsafeBufferPointer(start: model.parameters.pointer + tensor.offset, count: tensor.count))
    }
    try weights.write(to: file(CheckpointDirectory.modelFile))
    pause()

    var moments = SafeTensorsWriter(metadata: [
      "kind": optimizer.settings.kind.rawValue, "step_count": "\(optimizer.stepCount)",
    ])
    for (stateName, buffer) in optimizer.state {
      for tensor in model.layout.tensors {
        moments.add("\(stateName).\(tensor.name)", shape: tensor.shape, UnsafeBufferPointer(start: buffer.pointer + tensor.offset, count: tensor.count))
      }
    }
    try moments.write(to: file(CheckpointDirectory.optimizerFile))
    pause()

    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    try writeFileDurably(path: file(CheckpointDirectory.trainerFile), contents: try encoder.encode(state))
    try writeFileDurably(path: file(CheckpointDirectory.configFile), contents: Data(configJSON.utf8))
    try writeFileDurably(path: file(CheckpointDirectory.vocabularyFile), contents: Data(vocabularyJSON.utf8))
    pause()

    var digests: [String: String] = [:]
    for name in CheckpointDirectory.contentFiles { digests[name] = try SHA256.hexDigest(ofFile: file(name)) }
    try writeFileDurably(
      path: file(CheckpointDirectory.manifestFile),
      contents: try encoder.encode(["sha256": digests]))
    try fsyncDirectory(partial)

    let final = directory.path(name)
    if fm.fileExists(atPath: final) {
      // Only `best` is ever rewritten: move the old one aside first so a whole one always exists.
      let retired = directory.path(".partial-retired-\(name)-\(getpid())")
      try atomicRename(from: final, to: retired)
      try atomicRename(from: partial, to: final)
      try removeTree(retired)
    } else {
      try atomicRename(from: partial, to: final)
    }
  }

  /// Points `latest` at `name` and removes step checkpoints beyond the newest `keep`.
  public func publishLatest(_ name: String) throws {
    try replaceFileAtomically(path: directory.latestPointer, contents: Data((name + "\n").utf8))
    for old in directory.stepCheckpoints().dropFirst(keep) where old.name != name {
      try removeTree(directory.path(old.name))
    }
  }

  private func pause() {
    if pauseBetweenFiles > 0 { Thread.sleep(forTimeInterval: pauseBetweenFiles) }
  }
}

// MARK: - Reading

public struct LoadedCheckpoint {
  public let name: String
  public let path: String
  public let state: TrainerState
  public let config: Config
  public let tokenizer: Tokenizer
  let model: SafeTensorsFile
  let optimizer: SafeTensorsFile

  /// Opens and verifies a checkpoint: every file present, every checksum right, every header sound.
  public init(path: String, name: String) throws {
    self.name = name
    self.path = path
    func file(_ name: String) -> String { (path as NSString).appendingPathComponent(name) }
    let manifestPath = file(CheckpointDirectory.manifestFile)
    guard let manifestData = FileManager.default.contents(atPath: manifestPath) else {
      throw InputError(file: manifestPath, problem: "missing")
    }
    guard let manifest = try? JSONDecoder().decode([String: [String: String]].self, from: manifestData),
      let digests = manifest["sha256"]
    else { throw InputError(file: manifestPath, problem: "malformed manifest") }
    for name in CheckpointDirectory.contentFiles {
      let filePath = file(name)
      guard FileManager.default.fileExists(atPath: filePath) else {
        throw InputError(file: filePath, problem: "missing")
      }
      guard let expected = digests[name] else {
        throw InputError(file: manifestPath, problem: "no checksum listed for \(name)")
      }
      let actual = try SHA256.hexDigest(ofFile: filePath)
      guard actual == expected else {
        throw InputError(file: filePath, problem: "checksum mismatch (SHA-256 \(actual), manifest says \(expected)): the file is damaged")
      }
    }
    let stateData = FileManager.default.contents(atPath: file(CheckpointDirectory.trainerFile)) ?? Data()
    guard let state = try? JSONDecoder().decode(TrainerState.self, from: stateData) else {
      throw InputError(file: file(CheckpointDirectory.trainerFile), problem: "malformed trainer state")
    }
    self.state = state
    config = try Config.load(path: file(CheckpointDirectory.configFile))
    tokenizer = try Tokenizer.load(vocabularyFile: file(CheckpointDirectory.vocabularyFile))
    model = try SafeTensorsFile(path: file(CheckpointDirectory.modelFile))
    optimizer = try SafeTensorsFile(path: file(CheckpointDirectory.optimizerFile))
  }

  /// Copies the weights into `model`, checking every tensor's name, shape and type.
  public func restoreWeights(into model: GPT) throws {
    for tensor in model.layout.tensors {
      try restore(from: self.model, name: tensor.name, tensor: tensor, into: model.parameters)
    }
  }

  public func restoreOptimizer(_ optimizer: Optimizer, layout: ParameterLayout) throws {
    guard self.optimizer.metadata["kind"] == optimizer.settings.kind.rawValue,
      let stepCount = Int(self.optimizer.metadata["step_count"] ?? "")
    else {
      throw InputError(file: self.optimizer.path, problem: "optimizer state is for a different optimizer or lacks step_count")
    }
    for (stateName, buffer) in optimizer.state {
      for tensor in layout.tensors {
        try restore(from: self.optimizer, name: "\(stateName).\(tensor.name)", tensor: tensor, into: buffer)
      }
    }
    optimizer.stepCount = stepCount
  }

  private func restore(from file: SafeTensorsFile, name: String, tensor: ParameterTensor, into buffer: FloatBuffer) throws {
    guard let shape = file.shape(of: name) else {
      throw InputError(file: file.path, problem: "tensor \(name) is missing")
    }
    guard shape == tensor.shape else {
      throw InputError(file: file.path, problem: "tensor \(name) has shape \(shape), the model needs \(tensor.shape)")
    }
    try file.readFloats(name, into: UnsafeMutableBufferPointer(start: buffer.pointer + tensor.offset, count: tensor.count))
  }
}

extension CheckpointDirectory {
  /// The newest checkpoint that verifies: `latest` first, then older ones by step. Damaged ones are
  /// reported through `warn` and skipped. Returns nil when there are none at all; throws when some
  /// exist but none is valid.
  public func newestValid(warn: (String) -> Void) throws -> LoadedCheckpoint? {
    var candidates = stepCheckpoints().map(\.name)
    if let latest = latestName(), let index = candidates.firstIndex(of: latest) {
      candidates.remove(at: index)
      candidates.insert(latest, at: 0)
    }
    guard !candidates.isEmpty else { return nil }
    var faults: [String] = []
    for name in candidates {
      do {
        return try LoadedCheckpoint(path: path(name), name: name)
      } catch {
        warn("skipping damaged checkpoint \(name): \(error)")
        faults.append("\(name): \(error)")
      }
    }
    throw InputError(
      file: root, problem: "no valid checkpoint:\n  " + faults.joined(separator: "\n  "),
      hint: "start over with --fresh (the old checkpoints are kept aside), or repair the files")
  }
}
