// Reading a checkpoint back: every file verified against the manifest before any byte is trusted,
// then the weights and optimizer state copied in with every tensor's name and shape checked; and the
// search for the newest checkpoint that verifies.

import AttnCore
import AttnFormats
import Foundation

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
    let manifest = try CheckpointManifest.read(file(CheckpointDirectory.manifestFile))
    for name in CheckpointDirectory.contentFiles {
      if let fault = manifest.fault(of: name, in: path) { throw fault }
    }
    state = try TrainerState.read(file(CheckpointDirectory.trainerFile))
    config = try Config.load(path: file(CheckpointDirectory.configFile))
    tokenizer = try Tokenizer.load(vocabularyFile: file(CheckpointDirectory.vocabularyFile))
    model = try SafeTensorsFile(path: file(CheckpointDirectory.modelFile))
    optimizer = try SafeTensorsFile(path: file(CheckpointDirectory.optimizerFile))
    try Self.checkShapes(config: config, tokenizer: tokenizer, model: model, optimizer: optimizer)
  }

  /// Every tensor a checkpoint's own config implies, present with that shape: checksums prove the
  /// files are the ones written, not that they hold what the config says, and a checkpoint found
  /// wrong here is skipped for an older one rather than failing the run when its weights are loaded.
  static func checkShapes(config: Config, tokenizer: Tokenizer, model: SafeTensorsFile, optimizer: SafeTensorsFile) throws {
    let layout = ParameterLayout(config.modelShape(vocabSize: tokenizer.vocabSize))
    let expected =
      layout.tensors.map { (file: model, name: $0.name, shape: $0.shape) }
      + Optimizer.stateNames(config.optimizer.settings).flatMap { state in
        layout.tensors.map { (file: optimizer, name: "\(state).\($0.name)", shape: $0.shape) }
      }
    for tensor in expected {
      guard let shape = tensor.file.shape(of: tensor.name) else {
        throw InputError(file: tensor.file.path, problem: "tensor \(tensor.name) is missing")
      }
      guard shape == tensor.shape else {
        throw InputError(file: tensor.file.path, problem: "tensor \(tensor.name) has shape \(shape); the checkpoint's config needs \(tensor.shape)")
      }
    }
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

  /// Copies one of the checkpoint's weights into `model`'s tensor of that name; with `prefixOK`, a
  /// tensor of fewer rows takes the checkpoint's first rows (learned positions for a shorter block).
  func restore(_ tensor: ParameterTensor, into model: GPT, prefixOK: Bool) throws {
    let file = self.model
    guard prefixOK, let shape = file.shape(of: tensor.name), shape.count == 2, tensor.shape.count == 2,
      shape[1] == tensor.shape[1], shape[0] > tensor.shape[0]
    else {
      return try restore(from: file, name: tensor.name, tensor: tensor, into: model.parameters)
    }
    let rows = try file.floats(tensor.name)
    guard rows.prefix(tensor.count).allSatisfy(\.isFinite) else {
      throw InputError(file: file.path, problem: "tensor \(tensor.name) holds a NaN or an infinity: weights of a diverged run")
    }
    for i in 0..<tensor.count { model.parameters.pointer[tensor.offset + i] = rows[i] }
  }

  private func restore(from file: SafeTensorsFile, name: String, tensor: ParameterTensor, into buffer: FloatBuffer) throws {
    guard let shape = file.shape(of: name) else {
      throw InputError(file: file.path, problem: "tensor \(name) is missing")
    }
    guard shape == tensor.shape else {
      throw InputError(file: file.path, problem: "tensor \(name) has shape \(shape), the model needs \(tensor.shape)")
    }
    let values = UnsafeMutableBufferPointer(start: buffer.pointer + tensor.offset, count: tensor.count)
    try file.readFloats(name, into: values)
    // attn-train never saves such a state; one from elsewhere would only spread NaN through a run.
    if let bad = values.firstIndex(where: { !$0.isFinite }) {
      throw InputError(
        file: file.path, problem: "tensor \(name) holds \(values[bad]) at element \(bad): weights of a diverged run",
        hint: "resume from an earlier checkpoint (--from-checkpoint) or start over (--fresh)")
    }
  }
}

/// manifest.json: the SHA-256 of each content file, `{"sha256": {"model.safetensors": "ab12...", ...}}`.
struct CheckpointManifest {
  let sha256: [String: String]

  init(hashing files: [String], in directory: String) throws {
    var digests: [String: String] = [:]
    for name in files { digests[name] = try SHA256.hexDigest(ofFile: (directory as NSString).appendingPathComponent(name)) }
    sha256 = digests
  }

  init(json: JSONValue, file: String) throws {
    do {
      let digests = try JSONObject(json).object("sha256")
      var sha256: [String: String] = [:]
      for key in digests.keys { sha256[key] = try digests.string(key) }
      self.sha256 = sha256
    } catch let error as JSONFieldError {
      throw InputError(file: file, problem: "malformed manifest: \(error)")
    }
  }

  /// Why content file `name` of the checkpoint in `directory` cannot be trusted (missing, not
  /// listed, or not the bytes the manifest hashed), or nil when it verifies.
  func fault(of name: String, in directory: String) -> InputError? {
    let path = (directory as NSString).appendingPathComponent(name)
    guard FileManager.default.fileExists(atPath: path) else { return InputError(file: path, problem: "missing") }
    guard let expected = sha256[name] else {
      return InputError(
        file: (directory as NSString).appendingPathComponent(CheckpointDirectory.manifestFile), problem: "no checksum listed for \(name)")
    }
    let actual: String
    do { actual = try SHA256.hexDigest(ofFile: path) } catch { return InputError(file: path, problem: "unreadable: \(error)") }
    guard actual == expected else {
      return InputError(file: path, problem: "checksum mismatch (SHA-256 \(actual), manifest says \(expected)): the file is damaged")
    }
    return nil
  }

  var json: JSONValue {
    .object([(key: "sha256", value: .object(sha256.sorted { $0.key < $1.key }.map { (key: $0.key, value: .string($0.value)) }))])
  }
}

extension TrainerState {
  /// trainer.json, every problem named with the file.
  static func read(_ path: String) throws -> TrainerState {
    do {
      return try TrainerState(json: readJSON(path, "trainer state"))
    } catch let error as JSONFieldError {
      throw InputError(file: path, field: error.field.isEmpty ? nil : error.field, problem: "malformed trainer state: \(error.message)")
    }
  }
}

extension CheckpointManifest {
  static func read(_ path: String) throws -> CheckpointManifest {
    try CheckpointManifest(json: readJSON(path, "manifest"), file: path)
  }
}

/// A JSON file of a checkpoint, parsed strictly; `what` names it in the error.
private func readJSON(_ path: String, _ what: String) throws -> JSONValue {
  guard let data = FileManager.default.contents(atPath: path) else { throw InputError(file: path, problem: "missing") }
  do {
    return try JSONValue.parse(data)
  } catch let error as JSONSyntaxError {
    throw InputError(file: path, problem: "malformed \(what): \(error)")
  }
}

extension CheckpointDirectory {
  /// The newest checkpoint that verifies, by step; damaged ones are reported through `warn` and
  /// skipped. `latest` only names the newest one published: a checkpoint renamed into place just
  /// before a crash is whole and newer, and a `latest` pointing further back (edited, or left by an
  /// older version) must not send the run back over steps it has saved. Returns nil when there are
  /// none at all; throws when some exist but none is valid.
  public func newestValid(warn: (String) -> Void) throws -> LoadedCheckpoint? {
    let candidates = stepCheckpoints().map(\.name)
    let latest = latestName()
    if let latest, let newest = candidates.first, latest != newest, candidates.contains(latest) {
      warn("`latest` names \(latest), but \(newest) is newer: resuming from the newest checkpoint that verifies")
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
