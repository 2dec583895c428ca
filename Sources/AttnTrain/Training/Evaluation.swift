// Loss on the whole dev split: every window once, in order, shared contiguously between ranks and
// summed with one allreduce, so the figure is the same at any number of processes (up to float
// rounding of the final sum). A masked language model's windows are masked by their number, the same
// way at every evaluation. Training evaluates its live model; `attn-train eval` a checkpoint.

import AttnCore
import AttnDist
import AttnFormats
import Foundation

public struct EvaluationResult: Sendable, Equatable {
  /// Mean cross-entropy in nats per predicted token.
  public let loss: Double
  /// Predicted tokens, and the bytes of original text they stand for.
  public let tokens: Int
  public let bytes: Int
  public var perplexity: Double { exp(loss) }
  public var bitsPerToken: Double { loss / log(2) }
  /// Bits per byte of the original text: comparable across tokenizers (for ASCII text and the char
  /// tokenizer, bits per character).
  public var bitsPerByte: Double { loss * Double(tokens) / (Double(bytes) * log(2)) }
}

public final class Evaluator {
  private let model: GPT
  private let windows: DevWindows
  private let stream: TokenStream
  private let tokens: UnsafeMutablePointer<Int32>
  private let targets: UnsafeMutablePointer<Int32>
  private let masking: TokenMasking?
  private let positions: UnsafeMutablePointer<Int32>
  /// The bytes of original text each token id stands for (Tokenizer.bytesPerToken()).
  private let bytesPerToken: [Int32]
  private let sums = UnsafeMutableBufferPointer<Double>.allocate(capacity: 3)

  /// `maxTokens` (training.eval_tokens): evaluate only the windows within the first this many
  /// tokens; nil evaluates the whole split.
  public init(model: GPT, dev: TokenStream, bytesPerToken: [Int32], maxTokens: Int? = nil, masking: TokenMasking? = nil) {
    self.model = model
    self.bytesPerToken = bytesPerToken
    self.masking = masking
    let T = model.shape.blockSize
    windows = DevWindows(tokenCount: min(dev.count, maxTokens ?? Int.max), sequenceLength: T)
    stream = dev
    tokens = .allocate(capacity: model.maxBatch * T)
    targets = .allocate(capacity: model.maxBatch * T)
    positions = .allocate(capacity: T)
  }

  deinit {
    tokens.deallocate()
    targets.deallocate()
    positions.deallocate()
    sums.deallocate()
  }

  /// `progress` hears (batches done, batches) of this rank's share after each batch.
  public func evaluate(_ communicator: Communicator, progress: (Int, Int) -> Void = { _, _ in }) throws -> EvaluationResult {
    let T = windows.sequenceLength
    let mine = windows.share(rank: communicator.rank, of: communicator.size)
    let batches = (mine.count + model.maxBatch - 1) / model.maxBatch
    var lossSum = 0.0
    var byteCount = 0
    var predicted = 0
    var start = mine.lowerBound
    while start < mine.upperBound {
      let batch = start..<min(start + model.maxBatch, mine.upperBound)
      try windows.fill(tokens: tokens, targets: targets, from: stream, vocabularySize: bytesPerToken.count, windows: batch)
      if let masking {
        masking.apply(rows: batch.count, tokens: tokens, targets: targets, T: T, positions: positions) {
          masking.key(devWindow: batch.lowerBound + $0)
        }
      }
      lossSum += model.forward(tokens: tokens, targets: targets, B: batch.count, T: T)
      for i in 0..<(batch.count * T) where targets[i] >= 0 {
        predicted += 1
        if bytesPerToken.indices.contains(Int(targets[i])) { byteCount += Int(bytesPerToken[Int(targets[i])]) }
      }
      start = batch.upperBound
      progress((start - mine.lowerBound + model.maxBatch - 1) / model.maxBatch, batches)
    }
    sums[0] = lossSum
    sums[1] = Double(predicted)
    sums[2] = Double(byteCount)
    try communicator.allreduceSum(sums)
    return EvaluationResult(loss: sums[0] / sums[1], tokens: Int(sums[1]), bytes: Int(sums[2]))
  }
}

/// What `attn-train eval` reports: a checkpoint's dev-set figures, a language model's or a
/// classifier's.
public struct CheckpointEvaluation {
  public let checkpoint: LoadedCheckpoint
  public let result: EvaluationResult?
  public let classification: ClassificationMetrics?

  /// Loads the checkpoint (see CheckpointedModel), opens its data (a language model's prepared
  /// shards, prepared first with the checkpoint's tokenizer when missing; a classifier's examples,
  /// read with the checkpoint's tokenizer and labels), and evaluates the dev split on every rank.
  public init(config: Config, run: RunDirectory, communicator: Communicator, log: RunLog, checkpointName: String?) throws {
    let plan = BatchPlan.evaluation(config, ranks: communicator.size)
    let loaded = try CheckpointedModel(
      config: config, run: run, log: log, checkpointName: checkpointName, maxBatch: plan.sequencesPerRank)
    checkpoint = loaded.checkpoint
    if checkpoint.config.task.kind == .classification {
      let data = try ClassificationData.load(
        checkpoint.config.with(dataOf: config), vocabulary: checkpoint.tokenizer, labels: checkpoint.config.task.labels)
      classification = try ClassificationEvaluator(model: loaded.model, dev: data.dev, labels: data.labels)
        .evaluate(communicator, progress: log.progressReporter("evaluating dev"))
      result = nil
      return
    }
    let data = try PreparedData.open(
      config, directory: run.preparedDirectory(for: config), tokenizer: loaded.checkpoint.tokenizer,
      learnedTokenizerFile: run.learnedTokenizerFile, communicator: communicator, log: log)
    result = try Evaluator(
      model: loaded.model, dev: data.dev, bytesPerToken: data.tokenizer.bytesPerToken(), maxTokens: config.training.evalTokens,
      masking: TokenMasking(checkpoint.config, tokenizer: data.tokenizer)
    ).evaluate(communicator, progress: log.progressReporter("evaluating dev"))
    classification = nil
  }

  /// One object with every figure, keys sorted.
  public var json: JSONValue {
    let place: [(key: String, value: JSONValue)] = [
      (key: "checkpoint", value: .string(checkpoint.path)), (key: "step", value: JSONValue(integer: checkpoint.state.step)),
    ]
    if let classification, case .object(let members) = classification.json {
      return .object((members + place).sorted { $0.key < $1.key })
    }
    let result = result!
    return .object(
      ([
        (key: "bits_per_byte", value: JSONValue(number: result.bitsPerByte)),
        (key: "bits_per_token", value: JSONValue(number: result.bitsPerToken)),
        (key: "bytes", value: JSONValue(integer: result.bytes)),
        (key: "dev_loss", value: JSONValue(number: result.loss)),
        (key: "perplexity", value: JSONValue(number: result.perplexity)),
        (key: "tokens", value: JSONValue(integer: result.tokens)),
      ] + place).sorted { $0.key < $1.key })
  }

  /// "dev loss 1.8905 | perplexity 6.623 | bits/byte 2.7275 | 111488 tokens, 111488 bytes", or a
  /// classifier's table.
  public var summary: String {
    if let classification { return classification.table }
    let result = result!
    return String(
      format: "dev loss %.4f | perplexity %.3f | bits/byte %.4f | %d tokens, %d bytes", result.loss, result.perplexity,
      result.bitsPerByte, result.tokens, result.bytes)
  }
}
