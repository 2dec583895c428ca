// What a valid config turns into: defaults, every key set, paths, the resolved JSON round trip, the
// resume classification, and the user documentation kept in step with the key table.
import AttnCore
import AttnTrain
import AttnFormats
import Foundation
import Testing

/// Parses `{"data": {"train_path": "input.txt"}, <sections>}` as if read from /tmp/cfgs/tiny.json.
func parseConfig(_ sections: String = "", sourcePath: String = "/tmp/cfgs/tiny.json") throws -> Config {
  let json = #"{"data": {"train_path": "input.txt"}"# + (sections.isEmpty ? "" : ", " + sections) + "}"
  return try Config.parse(json: Data(json.utf8), sourcePath: sourcePath)
}

@Suite struct ConfigTests {
  @Test func minimalConfigGetsTheDocumentedDefaults() throws {
    let config = try parseConfig()
    #expect(
      config.model
        == ModelConfig(
          nLayer: 4, nHead: 4, nEmbd: 128, blockSize: 64, dropout: 0, positionEncoding: .learned,
          tieEmbeddings: true))
    #expect(
      config.optimizer
        == OptimizerConfig(
          kind: .adamw, learningRate: 1e-3, weightDecay: 0.1, beta1: 0.9, beta2: 0.99, eps: 1e-8,
          momentum: 0, nesterov: false, alpha: 0.99, gradClip: 1.0, decayEmbeddings: true))
    #expect(config.schedule == ScheduleConfig(kind: .cosine, warmupSteps: 100, decaySteps: nil, minLR: 1e-4))
    #expect(
      config.training
        == TrainingConfig(
          batchSize: 12, gradAccumSteps: 1, maxSteps: 2000, seed: 1337, evalInterval: 250, logInterval: 10,
          checkpointInterval: 250, keepCheckpoints: 3, consistencyCheckInterval: 100, threads: nil))
    #expect(
      config.data == DataConfig(trainPath: "/tmp/cfgs/input.txt", devPath: nil, trainFraction: 0.9, tokenizer: .char))
    #expect(config.output.runDir == "/tmp/cfgs/runs/tiny")
    #expect(config.sourcePath == "/tmp/cfgs/tiny.json")
    #expect(config.decaySteps == 2000)
  }

  @Test func everyKeyCanBeSet() throws {
    let config = try parseFullConfig()
    #expect(
      config.model
        == ModelConfig(
          nLayer: 2, nHead: 3, nEmbd: 48, blockSize: 32, dropout: 0.1, positionEncoding: .rope,
          tieEmbeddings: false))
    #expect(
      config.optimizer
        == OptimizerConfig(
          kind: .sgd, learningRate: 0.05, weightDecay: 0, beta1: 0.8, beta2: 0.95, eps: 1e-6, momentum: 0.9,
          nesterov: true, alpha: 0.9, gradClip: 0, decayEmbeddings: false))
    #expect(config.schedule == ScheduleConfig(kind: .linear, warmupSteps: 10, decaySteps: 400, minLR: 0.001))
    #expect(
      config.training
        == TrainingConfig(
          batchSize: 8, gradAccumSteps: 2, maxSteps: 500, seed: 18_446_744_073_709_551_615, evalInterval: 0,
          logInterval: 1, checkpointInterval: 0, keepCheckpoints: 1, consistencyCheckInterval: 0, threads: 2))
    #expect(
      config.data
        == DataConfig(trainPath: "/tmp/data/train.txt", devPath: "/tmp/data/dev.txt", tokenizer: .byte))
    #expect(config.output.runDir == "/tmp/cfgs/out/full")
    #expect(config.decaySteps == 400)
  }

  @Test func integersAreAcceptedForNumbersAndNullForOptionalKeys() throws {
    let config = try parseConfig(
      #""optimizer": {"learning_rate": 1, "grad_clip": 2}, "schedule": {"decay_steps": null, "min_lr": 0}, "#
        + #""training": {"threads": null}"#)
    #expect(config.optimizer.learningRate == 1.0)
    #expect(config.optimizer.gradClip == 2.0)
    #expect(config.schedule.decaySteps == nil)
    #expect(config.training.threads == nil)
  }

  @Test func resolvedJSONReadsBackEqual() throws {
    for config in [try parseConfig(), try parseFullConfig()] {
      let text = config.resolvedJSON()
      let again = try Config.parse(json: Data(text.utf8), sourcePath: config.sourcePath)
      #expect(again == config)
      #expect(again.resolvedJSON() == text)
    }
  }

  @Test func resolvedJSONHasEveryKeySortedWithAbsolutePaths() throws {
    let text = try parseConfig().resolvedJSON()
    guard case .object(let sections) = try JSONValue.parse(Data(text.utf8)) else {
      Issue.record("not an object")
      return
    }
    #expect(sections.map(\.key) == ["data", "model", "optimizer", "output", "schedule", "training"])
    var keyCount = 0
    for (_, value) in sections {
      guard case .object(let members) = value else { continue }
      #expect(members.map(\.key) == members.map(\.key).sorted())
      keyCount += members.count
    }
    #expect(keyCount == 8 + 11 + 4 + 12 + 4 + 1)
    #expect(text.contains(#""train_path": "/tmp/cfgs/input.txt""#))
    #expect(text.contains(#""decay_steps": null"#))
    #expect(text.contains("\n  \"model\": {\n    \"block_size\": 64,"))
  }

  @Test func relativePathsAreTakenFromTheConfigsDirectory() throws {
    let config = try Config.parse(
      json: Data(
        #"{"data": {"train_path": "../data/./t.txt", "dev_path": "/abs/d.txt"}, "output": {"run_dir": "r"}}"#.utf8),
      sourcePath: "/tmp/x/configs/a.json")
    #expect(config.data.trainPath == "/tmp/x/data/t.txt")
    #expect(config.data.devPath == "/abs/d.txt")
    #expect(config.output.runDir == "/tmp/x/configs/r")
  }

  @Test func aRelativeConfigPathIsTakenFromTheWorkingDirectory() throws {
    let config = try parseConfig(sourcePath: "configs/small.v2.json")
    let cwd = URL(fileURLWithPath: FileManager.default.currentDirectoryPath).standardizedFileURL.path
    #expect(config.data.trainPath == cwd + "/configs/input.txt")
    #expect(config.output.runDir == cwd + "/configs/runs/small.v2")
    #expect(config.sourcePath == "configs/small.v2.json")
  }

  @Test func loadReadsAFileAndNamesAMissingOne() throws {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("config-load-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    let file = dir.appendingPathComponent("small.json")
    try Data(#"{"data": {"train_path": "input.txt"}, "model": {"n_layer": 2}}"#.utf8).write(to: file)

    let config = try Config.load(path: file.path)
    #expect(config.model.nLayer == 2)
    #expect(config.data.trainPath == dir.appendingPathComponent("input.txt").standardizedFileURL.path)
    #expect(config.output.runDir == dir.appendingPathComponent("runs/small").standardizedFileURL.path)

    let missing = dir.appendingPathComponent("nope.json").path
    let error = try #require(throws: ConfigError.self) { try Config.load(path: missing) }
    #expect(error.field == nil)
    #expect(error.description.hasPrefix(missing + ": "))
    #expect(error.description.contains("does not exist"))
  }

  @Test func validateHoldsConfigsBuiltInCodeToTheSameRules() throws {
    var config = try parseConfig()
    try config.validate()
    config.model.nLayer = 0
    let error = try #require(throws: ConfigError.self) { try config.validate() }
    #expect(error.field == "model.n_layer")
    config.model.nLayer = 2
    config.model.nHead = 5
    #expect(throws: ConfigError.self) { try config.validate() }
  }

  @Test func changedFieldsSeparatesUnsafeFromSafe() throws {
    let old = try parseConfig()
    var new = old
    #expect(new.changedFields(comparedTo: old).unsafe.isEmpty)
    #expect(new.changedFields(comparedTo: old).safe.isEmpty)

    new.model.dropout = 0.2
    new.data.tokenizer = .byte
    new.training.seed = 7
    new.training.batchSize = 24
    new.training.gradAccumSteps = 2
    new.optimizer.kind = .adam
    new.optimizer.learningRate = 3e-4
    new.schedule.decaySteps = 5000
    new.training.maxSteps = 5000
    new.training.threads = 1
    new.training.logInterval = 1
    new.output.runDir = "/elsewhere"
    new.sourcePath = "/tmp/cfgs/other.json"
    let changes = new.changedFields(comparedTo: old)
    #expect(
      changes.unsafe == [
        "model.dropout", "optimizer.kind", "training.batch_size", "training.grad_accum_steps", "training.seed",
        "data.tokenizer",
      ])
    #expect(
      changes.safe == [
        "optimizer.learning_rate", "schedule.decay_steps", "training.max_steps", "training.log_interval",
        "training.threads", "output.run_dir",
      ])
  }

  /// Every key of the resolved config has a row under its section in dev/config-reference.md, and
  /// every default written there as JSON equals the real default.
  @Test func referenceDocumentMatchesTheKeys() throws {
    let reference = URL(fileURLWithPath: #filePath)
      .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
      .appendingPathComponent("dev/config-reference.md")
    let text = try String(contentsOf: reference, encoding: .utf8)
    var documented: [String: JSONValue?] = [:]
    var section = ""
    for line in text.split(separator: "\n") {
      if line.hasPrefix("## ") { section = String(line.dropFirst(3)) }
      guard line.hasPrefix("| `") else { continue }
      let cells = line.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }
      let key = cells[0].trimmingCharacters(in: CharacterSet(charactersIn: "`"))
      let defaultCell = cells[2].split(separator: "`", omittingEmptySubsequences: false)
      let json = defaultCell.count >= 3 ? try? JSONValue.parse(Data(defaultCell[1].utf8)) : nil
      documented["\(section).\(key)"] = json
    }

    guard case .object(let sections) = try JSONValue.parse(Data(try parseConfig().resolvedJSON().utf8)) else {
      Issue.record("resolved config is not an object")
      return
    }
    var actual: [String: JSONValue] = [:]
    for (name, value) in sections {
      guard case .object(let members) = value else { continue }
      for (key, value) in members { actual["\(name).\(key)"] = value }
    }
    #expect(Set(actual.keys).subtracting(documented.keys).sorted() == [], "undocumented keys")
    #expect(Set(documented.keys).subtracting(actual.keys).sorted() == [], "documented keys that do not exist")
    for (field, value) in actual {
      guard let doc = documented[field], let doc else { continue }
      #expect(sameValue(doc, value), "\(field): documented \(doc), actual \(value)")
    }
  }
}

/// Equal as JSON, with an integer and a number that have the same value counting as equal.
private func sameValue(_ a: JSONValue, _ b: JSONValue) -> Bool {
  func number(_ v: JSONValue) -> Double? {
    switch v {
    case .integer(let text): return Double(text)
    case .number(let x): return x
    default: return nil
    }
  }
  if let x = number(a), let y = number(b) { return x == y }
  return a == b
}

/// Every section with every key set to a value other than its default.
private func parseFullConfig() throws -> Config {
  try Config.parse(json: Data(("{" + fullSections + "}").utf8), sourcePath: "/tmp/cfgs/full.json")
}

private let fullSections = """
  "model": {"n_layer": 2, "n_head": 3, "n_embd": 48, "block_size": 32, "dropout": 0.1,
            "position_encoding": "rope", "tie_embeddings": false},
  "optimizer": {"kind": "sgd", "learning_rate": 0.05, "weight_decay": 0, "beta1": 0.8, "beta2": 0.95,
                "eps": 1e-6, "momentum": 0.9, "nesterov": true, "alpha": 0.9, "grad_clip": 0,
                "decay_embeddings": false},
  "schedule": {"kind": "linear", "warmup_steps": 10, "decay_steps": 400, "min_lr": 0.001},
  "training": {"batch_size": 8, "grad_accum_steps": 2, "max_steps": 500, "seed": 18446744073709551615,
               "eval_interval": 0, "log_interval": 1, "checkpoint_interval": 0, "keep_checkpoints": 1,
               "consistency_check_interval": 0, "threads": 2},
  "output": {"run_dir": "out/full"},
  "data": {"train_path": "../data/train.txt", "dev_path": "../data/dev.txt", "tokenizer": "byte"}
  """
