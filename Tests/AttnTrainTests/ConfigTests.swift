// What a valid config turns into: defaults, every key set, paths, the resolved JSON round trip, the
// resume classification, deprecated names, and the README's reference kept in step with the schema.
import AttnCore
import AttnFormats
import Foundation
import Testing

@testable import AttnTrain

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
          tieEmbeddings: true, vocabSize: nil))
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
          checkpointInterval: 250, keepCheckpoints: 3, consistencyCheckInterval: 100, threads: nil,
          gradientBucketMB: 4, reduceDuringBackward: true))
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
          tieEmbeddings: false, vocabSize: 50))
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
          logInterval: 1, checkpointInterval: 0, keepCheckpoints: 1, consistencyCheckInterval: 0, threads: 2,
          gradientBucketMB: 0.5, reduceDuringBackward: false))
    #expect(
      config.data
        == DataConfig(trainPath: "/tmp/data/train.txt", devPath: "/tmp/data/dev.txt", trainFraction: 0.9, tokenizer: .byte))
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
    #expect(sections.map(\.key) == ["data", "model", "optimizer", "output", "schedule", "task", "training"])
    var keyCount = 0
    for (_, value) in sections {
      guard case .object(let members) = value else { continue }
      #expect(members.map(\.key) == members.map(\.key).sorted())
      keyCount += members.count
    }
    #expect(keyCount == 8 + 9 + 11 + 1 + 4 + 10 + 23)
    #expect(text.contains(#""train_path": "/tmp/cfgs/input.txt""#))
    #expect(text.contains(#""decay_steps": null"#))
    #expect(text.contains("\n  \"model\": {\n    \"attention\": null,\n    \"block_size\": 64,"))
  }

  /// A shipped config that no longer parses is found here, not by the user who runs it.
  @Test func everyShippedConfigIsValid() throws {
    let configs = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
      .deletingLastPathComponent().appendingPathComponent("Configs")
    let names = try FileManager.default.contentsOfDirectory(atPath: configs.path).filter { $0.hasSuffix(".json") }
    #expect(names.count >= 8 && names.contains("sst2.json") && names.contains("sst2-finetune.json"))
    for name in names.sorted() {
      let config = try Config.load(path: configs.appendingPathComponent(name).path)
      #expect(config.output.runDir.hasSuffix("/runs/" + (name as NSString).deletingPathExtension), "\(name) writes elsewhere")
    }
  }

  @Test func relativePathsAreTakenFromTheConfigsDirectory() throws {
    let config = try Config.parse(
      json: Data(
        #"{"data": {"train_path": "../data/./t.txt", "dev_path": "/abs/d.txt"}, "output": {"run_dir": "r"}}"#.utf8),
      sourcePath: "/tmp/x/configs/a.json")
    #expect(config.data.trainPaths == ["/tmp/x/data/t.txt"])
    #expect(config.data.devPaths == ["/abs/d.txt"])
    #expect(config.output.runDir == "/tmp/x/configs/r")
  }

  @Test func aRelativeConfigPathIsTakenFromTheWorkingDirectory() throws {
    let config = try parseConfig(sourcePath: "configs/small.v2.json")
    let cwd = URL(fileURLWithPath: FileManager.default.currentDirectoryPath).standardizedFileURL.path
    #expect(config.data.trainPaths == [cwd + "/configs/input.txt"])
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
    #expect(config.data.trainPaths == [dir.appendingPathComponent("input.txt").standardizedFileURL.path])
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
    new.optimizer.settings.kind = .adam
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

  @Test func deprecatedNamesAreReadAsTheirNewKeysWithAWarning() throws {
    var warnings: [String] = []
    let json = #"{"data": {"train_path": "t.txt"}, "training": {"allreduce_bucket_mb": 2, "overlap_allreduce": false}}"#
    let config = try Config.parse(json: Data(json.utf8), sourcePath: "/tmp/cfgs/old.json") { warnings.append($0) }
    #expect(config.training.gradientBucketMB == 2)
    #expect(config.training.reduceDuringBackward == false)
    #expect(warnings.count == 2)
    #expect(warnings.allSatisfy { $0.hasPrefix("/tmp/cfgs/old.json: training.") && $0.contains("deprecated") })
    #expect(warnings.contains { $0.contains("allreduce_bucket_mb") && $0.contains("training.gradient_bucket_mb") })
    // The resolved config speaks the new names only.
    #expect(!config.resolvedJSON().contains("allreduce"))

    let both = #"{"data": {"train_path": "t.txt"}, "training": {"gradient_bucket_mb": 2, "allreduce_bucket_mb": 3}}"#
    let error = try #require(throws: ConfigError.self) { try Config.parse(json: Data(both.utf8), sourcePath: "b.json") }
    #expect(error.field == "training.allreduce_bucket_mb")
    #expect(error.description.contains("already sets this key"))
  }

  @Test func aBPETokenizerIsAFileWhosePathIsTakenFromTheConfigsDirectory() throws {
    let config = try parseConfig()
    #expect(config.data.tokenizer == .char)
    let json = #"{"data": {"train_path": "t.txt", "tokenizer": {"kind": "bpe", "path": "../tok/gpt2.tiktoken"}}}"#
    let bpe = try Config.parse(json: Data(json.utf8), sourcePath: "/tmp/cfgs/a.json")
    #expect(bpe.data.tokenizer == .bpe(path: "/tmp/tok/gpt2.tiktoken"))
    #expect(bpe.resolvedJSON().contains(#""path": "/tmp/tok/gpt2.tiktoken""#))
    #expect(try Config.parse(json: Data(bpe.resolvedJSON().utf8), sourcePath: "/tmp/cfgs/a.json") == bpe)
    // Another tokenizer changes the data: a resume must keep it.
    #expect(bpe.changedFields(comparedTo: config).unsafe.contains("data.tokenizer"))
  }

  /// Each section's struct has exactly as many stored fields as the schema has rows for it, so no
  /// field escapes the schema's default (the placeholders in Config.swift are never seen).
  @Test func everyFieldHasOneRowInTheSchema() {
    #expect(Mirror(reflecting: ModelConfig()).children.count == ConfigSchema.model.fields.count)
    #expect(Mirror(reflecting: OptimizerConfig().settings).children.count + 2 == ConfigSchema.optimizer.fields.count)
    #expect(Mirror(reflecting: ScheduleConfig()).children.count == ConfigSchema.schedule.fields.count)
    #expect(Mirror(reflecting: TrainingConfig()).children.count == ConfigSchema.training.fields.count)
    #expect(Mirror(reflecting: DataConfig()).children.count == ConfigSchema.data.fields.count)
    #expect(Mirror(reflecting: OutputConfig()).children.count == ConfigSchema.output.fields.count)
    for section in ConfigSchema.sections { #expect(Set(section.keys).count == section.keys.count, "\(section.name)") }
  }

  /// The README carries the reference generated from the schema, between its two markers. When this
  /// fails, run dev/update-config-reference.sh (it puts `attn-train config-reference` between them).
  @Test func readmeCarriesTheGeneratedReference() throws {
    let readme = URL(fileURLWithPath: #filePath)
      .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
      .appendingPathComponent("README.md")
    let text = try String(contentsOf: readme, encoding: .utf8)
    let begin = try #require(text.range(of: "<!-- config-reference: begin"), "no begin marker in README.md")
    let afterBegin = try #require(text.range(of: "-->\n", range: begin.upperBound..<text.endIndex))
    let end = try #require(text.range(of: "<!-- config-reference: end -->"), "no end marker in README.md")
    let carried = String(text[afterBegin.upperBound..<end.lowerBound]).trimmingCharacters(in: .newlines)
    let generated = Config.referenceMarkdown().trimmingCharacters(in: .newlines)
    let first = zip(carried.split(separator: "\n"), generated.split(separator: "\n")).first { $0 != $1 }
    #expect(carried == generated, "README.md differs from `attn-train config-reference` (dev/update-config-reference.sh updates it); first differing line: \(String(describing: first))")
  }
}

// Every field given, so that the expectations above spell out each value.
extension ModelConfig {
  init(
    nLayer: Int, nHead: Int, nEmbd: Int, blockSize: Int, dropout: Double, positionEncoding: PositionEncoding,
    tieEmbeddings: Bool, vocabSize: Int?
  ) {
    self.init()
    (self.nLayer, self.nHead, self.nEmbd, self.blockSize) = (nLayer, nHead, nEmbd, blockSize)
    (self.dropout, self.positionEncoding, self.tieEmbeddings, self.vocabSize) = (dropout, positionEncoding, tieEmbeddings, vocabSize)
  }
}

extension OptimizerConfig {
  init(
    kind: OptimizerKind, learningRate: Double, weightDecay: Float, beta1: Float, beta2: Float, eps: Float, momentum: Float,
    nesterov: Bool, alpha: Float, gradClip: Double, decayEmbeddings: Bool
  ) {
    self.init()
    settings = OptimizerSettings(
      kind: kind, weightDecay: weightDecay, beta1: beta1, beta2: beta2, eps: eps, momentum: momentum, nesterov: nesterov,
      alpha: alpha, decayEmbeddings: decayEmbeddings)
    self.learningRate = learningRate
    self.gradClip = gradClip
  }
}

extension ScheduleConfig {
  init(kind: ScheduleKind, warmupSteps: Int, decaySteps: Int?, minLR: Double) {
    self.init()
    (self.kind, self.warmupSteps, self.decaySteps, self.minLR) = (kind, warmupSteps, decaySteps, minLR)
  }
}

extension TrainingConfig {
  init(
    batchSize: Int, gradAccumSteps: Int, maxSteps: Int, seed: UInt64, evalInterval: Int, logInterval: Int,
    checkpointInterval: Int, keepCheckpoints: Int, consistencyCheckInterval: Int, threads: Int?, gradientBucketMB: Double,
    reduceDuringBackward: Bool
  ) {
    self.init()
    (self.batchSize, self.gradAccumSteps, self.maxSteps, self.seed) = (batchSize, gradAccumSteps, maxSteps, seed)
    (self.evalInterval, self.logInterval, self.checkpointInterval) = (evalInterval, logInterval, checkpointInterval)
    (self.keepCheckpoints, self.consistencyCheckInterval, self.threads) = (keepCheckpoints, consistencyCheckInterval, threads)
    (self.gradientBucketMB, self.reduceDuringBackward) = (gradientBucketMB, reduceDuringBackward)
  }
}

extension DataConfig {
  init(trainPath: String, devPath: String?, trainFraction: Double, tokenizer: TokenizerSpec) {
    self.init()
    (self.trainPaths, self.devPaths, self.trainFraction, self.tokenizer) = ([trainPath], devPath.map { [$0] } ?? [], trainFraction, tokenizer)
  }
}

/// Every section with every key set to a value other than its default.
private func parseFullConfig() throws -> Config {
  try Config.parse(json: Data(("{" + fullSections + "}").utf8), sourcePath: "/tmp/cfgs/full.json")
}

private let fullSections = """
  "model": {"n_layer": 2, "n_head": 3, "n_embd": 48, "block_size": 32, "dropout": 0.1,
            "position_encoding": "rope", "tie_embeddings": false, "vocab_size": 50},
  "optimizer": {"kind": "sgd", "learning_rate": 0.05, "weight_decay": 0, "beta1": 0.8, "beta2": 0.95,
                "eps": 1e-6, "momentum": 0.9, "nesterov": true, "alpha": 0.9, "grad_clip": 0,
                "decay_embeddings": false},
  "schedule": {"kind": "linear", "warmup_steps": 10, "decay_steps": 400, "min_lr": 0.001},
  "training": {"batch_size": 8, "grad_accum_steps": 2, "max_steps": 500, "seed": 18446744073709551615,
               "eval_interval": 0, "log_interval": 1, "checkpoint_interval": 0, "keep_checkpoints": 1,
               "consistency_check_interval": 0, "threads": 2, "gradient_bucket_mb": 0.5,
               "reduce_during_backward": false},
  "output": {"run_dir": "out/full"},
  "data": {"train_path": "../data/train.txt", "dev_path": "../data/dev.txt", "tokenizer": "byte"}
  """
