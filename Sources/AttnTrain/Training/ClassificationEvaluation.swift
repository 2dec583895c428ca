// A classifier on the dev set: every dev example exactly once, shared contiguously among ranks, its
// prediction the label with the largest logit; the ranks add their confusion counts and loss, so
// every figure is the same at any rank count. Accuracy, macro-F1 (the mean of the per-label F1),
// per-label precision, recall and F1, and the confusion matrix (rows: true label, columns: predicted).

import AttnCore
import AttnDist
import AttnFormats
import Foundation

public struct ClassificationMetrics: Sendable, Equatable {
  public let labels: [String]
  /// confusion[true][predicted]: how many dev examples.
  public let confusion: [[Int]]
  /// Mean cross-entropy per example.
  public let loss: Double

  public var examples: Int { confusion.reduce(0) { $0 + $1.reduce(0, +) } }
  public var correct: Int { confusion.indices.reduce(0) { $0 + confusion[$1][$1] } }
  public var accuracy: Double { Double(correct) / Double(max(1, examples)) }

  public struct LabelScores: Sendable, Equatable {
    public let precision, recall, f1: Double
    /// Dev examples with this true label.
    public let support: Int
  }

  /// Per label; a precision or recall with nothing to divide by counts as 0 (as scikit-learn does).
  public var perLabel: [LabelScores] {
    confusion.indices.map { k in
      let truePositives = Double(confusion[k][k])
      let predicted = Double(confusion.reduce(0) { $0 + $1[k] })
      let actual = Double(confusion[k].reduce(0, +))
      let precision = predicted > 0 ? truePositives / predicted : 0
      let recall = actual > 0 ? truePositives / actual : 0
      let f1 = precision + recall > 0 ? 2 * precision * recall / (precision + recall) : 0
      return LabelScores(precision: precision, recall: recall, f1: f1, support: Int(actual))
    }
  }

  public var macroF1: Double { perLabel.reduce(0) { $0 + $1.f1 } / Double(max(1, labels.count)) }

  /// One object with every figure.
  public var json: JSONValue {
    .object([
      (key: "accuracy", value: JSONValue(number: accuracy)),
      (key: "confusion", value: .array(confusion.map { .array($0.map(JSONValue.init(integer:))) })),
      (key: "dev_loss", value: JSONValue(number: loss)),
      (key: "examples", value: JSONValue(integer: examples)),
      (key: "labels", value: .array(labels.map { .string($0) })),
      (key: "macro_f1", value: JSONValue(number: macroF1)),
      (key: "per_label", value: .object(zip(labels, perLabel).map { label, scores in
        (key: label, value: JSONValue.object([
          (key: "f1", value: JSONValue(number: scores.f1)), (key: "precision", value: JSONValue(number: scores.precision)),
          (key: "recall", value: JSONValue(number: scores.recall)), (key: "support", value: JSONValue(integer: scores.support)),
        ]))
      })),
    ])
  }

  /// A readable report: the headline figures, a table per label, the confusion matrix.
  public var table: String {
    var lines = [
      String(format: "accuracy %.4f (%d of %d) | macro-F1 %.4f | dev loss %.4f", accuracy, correct, examples, macroF1, loss), "",
      "| label | precision | recall | F1 | support |", "|---|--:|--:|--:|--:|",
    ]
    for (label, s) in zip(labels, perLabel) {
      lines.append(String(format: "| %@ | %.4f | %.4f | %.4f | %d |", label, s.precision, s.recall, s.f1, s.support))
    }
    lines += ["", "confusion (rows: true label, columns: predicted)", "| | " + labels.joined(separator: " | ") + " |",
              "|---|" + String(repeating: "--:|", count: labels.count)]
    for (label, row) in zip(labels, confusion) { lines.append("| \(label) | " + row.map(String.init).joined(separator: " | ") + " |") }
    return lines.joined(separator: "\n")
  }
}

public final class ClassificationEvaluator {
  private let model: GPT
  private let dev: LabeledExamples
  private let labels: [String]
  private let tokens, lengths, truth: UnsafeMutablePointer<Int32>
  /// [K*K confusion counts, loss sum]: one allreduce.
  private let sums: UnsafeMutableBufferPointer<Double>

  public init(model: GPT, dev: LabeledExamples, labels: [String]) {
    precondition(model.shape.classifier?.classes == labels.count, "one logit per label")
    self.model = model
    self.dev = dev
    self.labels = labels
    tokens = .allocate(capacity: model.maxBatch * dev.sequenceLength)
    lengths = .allocate(capacity: model.maxBatch)
    truth = .allocate(capacity: model.maxBatch)
    sums = .allocate(capacity: labels.count * labels.count + 1)
  }

  deinit {
    tokens.deallocate()
    lengths.deallocate()
    truth.deallocate()
    sums.deallocate()
  }

  /// `progress` hears (batches done, batches) of this rank's share after each batch.
  public func evaluate(_ communicator: Communicator, progress: (Int, Int) -> Void = { _, _ in }) throws -> ClassificationMetrics {
    let K = labels.count
    let T = dev.sequenceLength
    let mine = (dev.count * communicator.rank / communicator.size)..<(dev.count * (communicator.rank + 1) / communicator.size)
    let batches = (mine.count + model.maxBatch - 1) / model.maxBatch
    sums.update(repeating: 0)
    var start = mine.lowerBound
    while start < mine.upperBound {
      let batch = start..<min(start + model.maxBatch, mine.upperBound)
      for (row, n) in batch.enumerated() { dev.copy(n, toRow: row, tokens: tokens, lengths: lengths, labels: truth) }
      sums[K * K] += model.classify(tokens: tokens, lengths: lengths, labels: truth, B: batch.count, T: T)
      for row in 0..<batch.count {
        let logits = model.logits + row * K
        var predicted = 0
        for k in 1..<K where logits[k] > logits[predicted] { predicted = k }
        sums[Int(truth[row]) * K + predicted] += 1
      }
      start = batch.upperBound
      progress((start - mine.lowerBound + model.maxBatch - 1) / model.maxBatch, batches)
    }
    try communicator.allreduceSum(sums)
    let confusion = (0..<K).map { t in (0..<K).map { p in Int(sums[t * K + p]) } }
    return ClassificationMetrics(labels: labels, confusion: confusion, loss: sums[K * K] / Double(max(1, dev.count)))
  }
}
