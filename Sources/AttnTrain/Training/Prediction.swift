// `attn-train predict`: a classifier's label and class probabilities for each text of a file. Every
// rank runs the saved model on its contiguous share of the texts, in batches; the probabilities are
// summed over ranks into one table (each row is written by exactly one rank, the others add zeros,
// so the sum is exact) and rank 0 writes it out in input order.

import AttnCore
import AttnDist
import AttnFormats
import Foundation

public struct Predictions {
  public let labels: [String]
  /// The input line of each text.
  public let lines: [Int]
  /// probabilities[n * K + k]: text n's probability of labels[k].
  public let probabilities: [Double]

  /// One JSON object per text: its line, the most probable label, that label's probability, and
  /// every label's.
  public var jsonLines: String {
    let K = labels.count
    var out = ""
    for (n, line) in lines.enumerated() {
      let row = probabilities[(n * K)..<((n + 1) * K)]
      let best = row.indices.max { row[$0] < row[$1] }! - n * K
      let object = JSONValue.object([
        (key: "line", value: JSONValue(integer: line)), (key: "label", value: .string(labels[best])),
        (key: "score", value: JSONValue(number: row[n * K + best])),
        (key: "probabilities", value: .object(zip(labels, row).map { (key: $0, value: JSONValue(number: $1)) })),
      ])
      out += object.description + "\n"
    }
    return out
  }
}

public enum Predictor {
  /// Predicts every text of `inputPath` (TSV, CSV or JSONL by its extension, else data.format; the
  /// text in data.text_field, a label column optional and ignored) with the checkpoint `checkpointName`
  /// (nil: the newest valid one). Every rank returns the whole table.
  public static func predict(
    config: Config, run: RunDirectory, communicator: Communicator, log: RunLog, checkpointName: String?, inputPath: String,
    batch: Int
  ) throws -> Predictions {
    let loaded = try CheckpointedModel(config: config, run: run, log: log, checkpointName: checkpointName, maxBatch: batch)
    let trained = loaded.checkpoint.config
    guard trained.task.kind == .classification, let labels = trained.task.labels else {
      throw InputError(
        file: config.sourcePath, field: "task.kind", problem: "predict labels texts with a classifier; this run is a language model",
        hint: "use attn-train sample to generate text")
    }
    let format = SourceFormat(fileExtension: (inputPath as NSString).pathExtension) ?? config.data.format
    let texts = try ClassificationData.readExamples(
      inputPath, field: "--input", format: format, textField: config.data.textField, labelField: trained.task.labelField,
      labelled: false)
    guard !texts.isEmpty else { throw InputError(file: inputPath, field: "--input", problem: "holds no texts") }
    let encoder = try ExampleEncoder(trained, tokenizer: loaded.checkpoint.tokenizer)
    let examples = LabeledExamples(
      sequenceLength: encoder.sequenceLength, examples: try texts.map { (try encoder.encode($0), 0) })

    let (model, K, T, N) = (loaded.model, labels.count, encoder.sequenceLength, texts.count)
    let table = UnsafeMutableBufferPointer<Double>.allocate(capacity: N * K)
    defer { table.deallocate() }
    table.initialize(repeating: 0)
    let tokens = UnsafeMutablePointer<Int32>.allocate(capacity: batch * T)
    let lengths = UnsafeMutablePointer<Int32>.allocate(capacity: batch)
    let unused = UnsafeMutablePointer<Int32>.allocate(capacity: batch)
    defer {
      tokens.deallocate()
      lengths.deallocate()
      unused.deallocate()
    }
    let mine = (N * communicator.rank / communicator.size)..<(N * (communicator.rank + 1) / communicator.size)
    var start = mine.lowerBound
    while start < mine.upperBound {
      let rows = start..<min(start + batch, mine.upperBound)
      for (row, n) in rows.enumerated() { examples.copy(n, toRow: row, tokens: tokens, lengths: lengths, labels: unused) }
      model.classify(tokens: tokens, lengths: lengths, labels: nil, B: rows.count, T: T)
      for (row, n) in rows.enumerated() { softmax(model.logits + row * K, K, into: table.baseAddress! + n * K) }
      start = rows.upperBound
    }
    try communicator.allreduceSum(table)
    return Predictions(labels: labels, lines: texts.map(\.line), probabilities: Array(table))
  }

  /// In Double, from the largest logit, so no probability overflows or rounds to a wrong 1.
  private static func softmax(_ logits: UnsafePointer<Float>, _ K: Int, into out: UnsafeMutablePointer<Double>) {
    var largest = -Double.infinity
    for k in 0..<K { largest = max(largest, Double(logits[k])) }
    var sum = 0.0
    for k in 0..<K {
      out[k] = exp(Double(logits[k]) - largest)
      sum += out[k]
    }
    for k in 0..<K { out[k] /= sum }
  }
}

extension SourceFormat {
  /// The format a file's extension names, if any.
  init?(fileExtension: String) {
    switch fileExtension.lowercased() {
    case "tsv": self = .tsv
    case "csv": self = .csv
    case "jsonl", "ndjson": self = .jsonl
    default: return nil
    }
  }
}
