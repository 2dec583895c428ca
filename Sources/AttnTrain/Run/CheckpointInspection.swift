// `attn-train inspect PATH`: what a checkpoint holds before anyone shares or resumes it: step,
// tokens, dev figures, config and tokenizer, every tensor's shape and statistics (non-finite values
// counted), and whether every file verifies against the manifest. Files that fail their checksum
// are named with the fault and not read further. InspectionTarget.swift handles run directories.

import AttnCore
import AttnFormats
import Foundation

public struct CheckpointInspection {
  public struct FileCheck {
    public let name: String
    /// nil: present and its checksum matches the manifest.
    public let fault: String?
  }

  public struct TensorStatistics {
    public let name: String
    public let shape: [Int]
    public let count: Int
    public let mean: Double
    public let std: Double
    public let min: Float
    public let max: Float
    public let nonFinite: Int
  }

  public let path: String
  public let name: String
  public let files: [FileCheck]
  public let state: TrainerState?
  public let config: Config?
  public let tokenizer: Tokenizer?
  public let tensors: [TensorStatistics]
  public let optimizerKind: String?
  public let optimizerStepCount: Int?
  /// Optimizer-state tensors holding a NaN or an infinity, by name.
  public let optimizerNonFinite: [String]
  /// The dev figures logged at the checkpoint's step (dev_loss, dev_accuracy, dev_macro_f1), from
  /// the run directory's metrics.jsonl when the checkpoint sits in one and that step was evaluated.
  public let devAtStep: [(key: String, value: Double)]
  /// Every fault found, each naming its file: empty when the checkpoint would load.
  public let faults: [String]

  public var parameterCount: Int { tensors.reduce(0) { $0 + $1.count } }

  /// `detailed`: read every tensor for its statistics; without it only what verifying needs.
  public init(checkpoint path: String, name: String? = nil, detailed: Bool = true) {
    self.path = path
    self.name = name ?? (path as NSString).lastPathComponent
    func file(_ name: String) -> String { (path as NSString).appendingPathComponent(name) }
    var faults: [String] = []
    var files: [FileCheck] = []
    var manifest: CheckpointManifest?
    do {
      manifest = try CheckpointManifest.read(file(CheckpointDirectory.manifestFile))
      files.append(FileCheck(name: CheckpointDirectory.manifestFile, fault: nil))
    } catch {
      files.append(FileCheck(name: CheckpointDirectory.manifestFile, fault: "\(error)"))
      faults.append("\(error)")
    }
    for name in CheckpointDirectory.contentFiles {
      let fault: String? =
        if let manifest { manifest.fault(of: name, in: path)?.description } else { "\(file(name)): not verified (no readable manifest)" }
      files.append(FileCheck(name: name, fault: fault))
      if let fault { faults.append(fault) }
    }
    self.files = files
    let verified = Set(files.filter { $0.fault == nil }.map(\.name))
    /// Reads a verified file; a problem reading it becomes a fault naming it.
    func read<T>(_ name: String, _ body: (String) throws -> T) -> T? {
      guard verified.contains(name) else { return nil }
      do { return try body(file(name)) } catch {
        faults.append("\(error)")
        return nil
      }
    }
    state = read(CheckpointDirectory.trainerFile) { try TrainerState.read($0) }
    config = read(CheckpointDirectory.configFile) { try Config.load(path: $0) }
    tokenizer = read(CheckpointDirectory.vocabularyFile) { try Tokenizer.load(vocabularyFile: $0) }
    let model = read(CheckpointDirectory.modelFile) { try SafeTensorsFile(path: $0) }
    let optimizer = read(CheckpointDirectory.optimizerFile) { try SafeTensorsFile(path: $0) }
    var tensors: [TensorStatistics] = []
    var optimizerNonFinite: [String] = []
    if detailed {
      do {
        tensors = try model.map { file in try file.names.map { try Self.statistics(of: $0, in: file) } } ?? []
        optimizerNonFinite = try optimizer.map { file in try file.names.filter { try Self.statistics(of: $0, in: file).nonFinite > 0 } } ?? []
      } catch {
        faults.append("\(error)")
      }
    }
    self.tensors = tensors
    self.optimizerNonFinite = optimizerNonFinite
    optimizerKind = optimizer?.metadata["kind"]
    optimizerStepCount = optimizer?.metadata["step_count"].flatMap { Int($0) }
    devAtStep = state.map { Self.devFigures(atStep: $0.step, checkpoint: path) } ?? []
    // attn-train never writes one (it refuses to save non-finite weights); a checkpoint holding one
    // comes from elsewhere or was changed, and would only spread NaN through a run.
    for tensor in tensors where tensor.nonFinite > 0 {
      faults.append("\(file(CheckpointDirectory.modelFile)): tensor \(tensor.name) holds \(tensor.nonFinite) NaN or infinite value(s)")
    }
    if !optimizerNonFinite.isEmpty {
      faults.append("\(file(CheckpointDirectory.optimizerFile)): non-finite values in \(optimizerNonFinite.joined(separator: ", "))")
    }
    // What loading checks beyond the checksums: every tensor the config implies, with its shape.
    if faults.isEmpty, let config, let tokenizer, let model, let optimizer {
      do { try LoadedCheckpoint.checkShapes(config: config, tokenizer: tokenizer, model: model, optimizer: optimizer) } catch {
        faults.append("\(error)")
      }
    }
    self.faults = faults
  }

  /// <run>/checkpoints/<name> -> <run>/metrics.jsonl's dev figures at `step`, if any.
  private static func devFigures(atStep step: Int, checkpoint path: String) -> [(key: String, value: Double)] {
    let run = ((path as NSString).deletingLastPathComponent as NSString).deletingLastPathComponent
    guard let data = FileManager.default.contents(atPath: RunDirectory(path: run, origin: "").metricsFile),
      let record = RunRecords.metrics(data).records.last(where: { $0["step"] == Double(step) && $0["dev_loss"] != nil })
    else { return [] }
    return ["dev_loss", "dev_accuracy", "dev_macro_f1"].compactMap { key in record[key].map { (key: key, value: $0) } }
  }

  static func statistics(of name: String, in file: SafeTensorsFile) throws -> TensorStatistics {
    let values = try file.floats(name)
    var sum = 0.0, sumOfSquares = 0.0, low = Float.infinity, high = -Float.infinity, nonFinite = 0
    for value in values {
      guard value.isFinite else {
        nonFinite += 1
        continue
      }
      sum += Double(value)
      sumOfSquares += Double(value) * Double(value)
      low = Swift.min(low, value)
      high = Swift.max(high, value)
    }
    let finite = Double(values.count - nonFinite)
    let mean = finite > 0 ? sum / finite : .nan
    let variance = finite > 0 ? Swift.max(sumOfSquares / finite - mean * mean, 0) : .nan
    return TensorStatistics(
      name: name, shape: file.shape(of: name) ?? [], count: values.count, mean: mean, std: variance.squareRoot(),
      min: finite > 0 ? low : .nan, max: finite > 0 ? high : .nan, nonFinite: nonFinite)
  }

  // MARK: - Reading

  public var text: String {
    var lines = ["checkpoint \(path)"]
    if let state {
      lines.append(
        "  step \(state.step), tokens seen \(state.tokensSeen.formatted()), training time \(String(format: "%.1f", state.elapsedSeconds)) s, trained on \(state.worldSize) rank\(state.worldSize == 1 ? "" : "s")")
      if !devAtStep.isEmpty {
        lines.append("  dev at this step: " + devAtStep.map { String(format: "%@ %.4f", $0.key.replacingOccurrences(of: "dev_", with: ""), $0.value) }.joined(separator: ", "))
      }
      if let best = state.bestDevSummary { lines.append("  best dev \(best)") }
      if state.skippedSteps > 0 { lines.append("  \(state.skippedSteps) non-finite step(s) skipped") }
    }
    if let config { lines.append("  " + config.summary) }
    if let tokenizer { lines.append("  tokenizer \(tokenizer.kind.rawValue), \(tokenizer.vocabSize) tokens") }
    if !tensors.isEmpty {
      var line = "  parameters \(parameterCount.formatted()) in \(tensors.count) tensors"
      if let optimizerKind { line += "; optimizer \(optimizerKind) at step \(optimizerStepCount.map(String.init) ?? "?")" }
      lines.append(line)
    }
    lines.append("  files: " + files.map { "\($0.name) \($0.fault == nil ? "ok" : "DAMAGED")" }.joined(separator: ", "))
    if !tensors.isEmpty {
      let width = Swift.max(6, tensors.map(\.name.count).max() ?? 0)
      func pad(_ text: String, _ n: Int, left: Bool = false) -> String {
        let space = String(repeating: " ", count: Swift.max(0, n - text.count))
        return left ? text + space : space + text
      }
      lines.append(
        "  " + pad("tensor", width, left: true) + pad("shape", 16) + pad("count", 12) + pad("mean", 12) + pad("std", 11)
          + pad("min", 11) + pad("max", 11) + pad("non-finite", 12))
      for t in tensors {
        let shape = "[" + t.shape.map(String.init).joined(separator: ", ") + "]"
        lines.append(
          "  " + pad(t.name, width, left: true) + pad(shape, 16) + pad(t.count.formatted(), 12)
            + pad(String(format: "%.4g", t.mean), 12) + pad(String(format: "%.4g", t.std), 11)
            + pad(String(format: "%.4g", t.min), 11) + pad(String(format: "%.4g", t.max), 11) + pad("\(t.nonFinite)", 12))
      }
    }
    if !optimizerNonFinite.isEmpty { lines.append("  optimizer state with non-finite values: " + optimizerNonFinite.joined(separator: ", ")) }
    if faults.isEmpty {
      lines.append("  verified: every checksum matches the manifest and every tensor has the shape its config needs")
    } else {
      lines.append("  NOT VALID:")
      lines += faults.map { "    " + $0 }
    }
    return lines.joined(separator: "\n")
  }

  public var json: JSONValue {
    var members: [(key: String, value: JSONValue)] = [
      (key: "path", value: .string(path)), (key: "valid", value: .bool(faults.isEmpty)),
    ]
    if let state { members.append((key: "trainer", value: state.json)) }
    if !devAtStep.isEmpty { members.append((key: "dev", value: .object(devAtStep.map { (key: $0.key, value: JSONValue(number: $0.value)) }))) }
    if let config {
      members.append((key: "task", value: .string(config.task.kind.rawValue)))
      members.append((key: "summary", value: .string(config.summary)))
    }
    if let tokenizer {
      members.append((
        key: "tokenizer",
        value: .object([(key: "kind", value: .string(tokenizer.kind.rawValue)), (key: "vocab_size", value: JSONValue(integer: tokenizer.vocabSize))])
      ))
    }
    members.append((key: "parameters", value: JSONValue(integer: parameterCount)))
    members.append((
      key: "tensors",
      value: .array(
        tensors.map { t in
          .object([
            (key: "name", value: .string(t.name)), (key: "shape", value: .array(t.shape.map { JSONValue(integer: $0) })),
            (key: "count", value: JSONValue(integer: t.count)), (key: "mean", value: JSONValue(number: t.mean)),
            (key: "std", value: JSONValue(number: t.std)), (key: "min", value: JSONValue(number: Double(t.min))),
            (key: "max", value: JSONValue(number: Double(t.max))), (key: "non_finite", value: JSONValue(integer: t.nonFinite)),
          ])
        })
    ))
    if let optimizerKind {
      members.append((key: "optimizer", value: .string(optimizerKind)))
      members.append((key: "optimizer_step_count", value: optimizerStepCount.map { JSONValue(integer: $0) } ?? .null))
      members.append((key: "optimizer_non_finite", value: .array(optimizerNonFinite.map { .string($0) })))
    }
    members.append((
      key: "files",
      value: .object(files.map { (key: $0.name, value: $0.fault.map { .string($0) } ?? .string("ok")) })
    ))
    members.append((key: "faults", value: .array(faults.map { .string($0) })))
    return .object(members)
  }
}

extension TrainerState {
  /// "loss 1.8905, accuracy 0.8085 (step 2000)": the best dev figures a run has seen, if any.
  var bestDevSummary: String? {
    var parts: [String] = []
    if let loss = bestDevLoss { parts.append(String(format: "loss %.4f", loss)) }
    if let accuracy = bestDevAccuracy { parts.append(String(format: "accuracy %.4f", accuracy)) }
    if let f1 = bestDevMacroF1 { parts.append(String(format: "macro-F1 %.4f", f1)) }
    guard !parts.isEmpty else { return nil }
    return parts.joined(separator: ", ") + (bestStep.map { " (step \($0))" } ?? "")
  }
}

extension Config {
  /// "language_model: 4 layers, 4 heads, width 128, block 64; adamw, learning rate 0.001, cosine schedule".
  var summary: String {
    var text = "\(task.kind.rawValue): \(model.nLayer) layers, \(model.nHead) heads, width \(model.nEmbd), block \(model.blockSize)"
    if task.kind == .classification, let labels = task.labels { text += ", labels " + labels.joined(separator: ", ") }
    return text + "; \(optimizer.settings.kind.rawValue), learning rate \(optimizer.learningRate), \(schedule.kind.rawValue) schedule"
  }
}
