// The classifier against dev/reference/classifier_reference.py (PyTorch, float64, written from the
// classifier section of dev/MODEL_SPEC.md): class logits, loss, every parameter gradient and 10 steps
// of AdamW, for each pooling, both attention kinds, with and without the hidden layer, label
// smoothing and class weights, on batches of sequences of different lengths padded to T.
//
// What is compared is only what padded rows cannot reach: the reference computes padded query rows
// (as scaled_dot_product_attention would) where we write zeros, but nothing real reads them — keys
// past a length are masked (bidirectional) or later than every real query (causal), and pooling
// reads real tokens only — so logits [B, K], the loss and the parameter gradients must agree. A leak
// of padding shows up in all three, and in the padding id's embedding gradient, exactly 0 in the
// reference because that id occurs only as padding.

@testable import AttnCore
import Testing

@Suite struct PyTorchClassifierParityTests {
  static let fixtures = [
    "parity-classifier-bidirectional-mean-hidden", "parity-classifier-causal-last",
    "parity-classifier-bidirectional-first-smoothing-weights", "parity-classifier-bidirectional-last-hidden-weights",
    "parity-classifier-causal-mean-hidden-smoothing", "parity-classifier-causal-first",
  ]

  struct Batch {
    let tokens: [Int32]
    let lengths: [Int32]
    let labels: [Int32]
    let loss: ClassificationLoss

    init(_ f: ParityFixture) throws {
      tokens = try f.file.int32s("input_tokens")
      lengths = try f.file.int32s("lengths")
      labels = try f.file.int32s("labels")
      let weights = f.metadata["class_weights"]!
      loss = ClassificationLoss(
        labelSmoothing: f.number("label_smoothing"),
        classWeights: weights == "none" ? nil : weights.split(separator: ",").map { Float(String($0))! })
    }

    /// Mean loss over the batch, as the reference reports it (classify returns the sum).
    func classify(_ model: GPT, B: Int, T: Int) -> Double {
      model.classify(tokens: tokens, lengths: lengths, labels: labels, B: B, T: T, loss: loss) / Double(B)
    }

    func backward(_ model: GPT, B: Int, T: Int) {
      model.backwardClassifier(
        tokens: tokens, lengths: lengths, labels: labels, B: B, T: T, loss: loss, lossScale: 1 / Float(B))
    }
  }

  // Tolerances: float32 against float64 through two blocks and a head of at most 4C = 64-term sums.
  // Observed (see dev/reference/README.md): loss <= 3e-7 relative, logits <= 1e-6 abs, gradients
  // <= 3e-7 abs and 3e-6 relative per tensor. The bounds leave an order of magnitude or more; a
  // wrong mask, pooling or loss term moves these by 1e-2 or more.
  @Test(arguments: fixtures)
  func logitsLossAndGradients(name: String) throws {
    let f = try ParityFixture(name)
    let batch = try Batch(f)
    let loss = batch.classify(f.model, B: f.B, T: f.T)
    let expectedLoss = Double(try f.file.floats("expected.loss")[0])
    #expect(abs(loss - expectedLoss) / expectedLoss < 1e-5, "\(name) loss \(loss) vs \(expectedLoss)")
    let logits = try f.file.floats("expected.logits")
    let logitsDifference = ParityFixture.maxAbsDifference(f.model.logits, logits)
    #expect(logitsDifference < 1e-5, "\(name) logits: max abs difference \(logitsDifference)")
    f.model.zeroGradients()
    batch.backward(f.model, B: f.B, T: f.T)
    try f.expectGradientsMatch(relative: 1e-4, absolute: 1e-5)
    let pad = Int(f.metadata["pad_token"]!)!
    let C = f.model.shape.channels
    let wte = f.model.layout["wte"]!
    let padRow = UnsafeBufferPointer(start: f.model.gradients.pointer + wte.offset + pad * C, count: C)
    #expect(padRow.allSatisfy { $0 == 0 }, "\(name): the padding id's embedding has a gradient")
  }

  // As the language model's: losses to 1e-4 relative, parameters to 1e-3 relative per tensor (key
  // bias aside without RoPE), both ~100x what we observe.
  @Test(arguments: fixtures)
  func tenAdamWSteps(name: String) throws {
    let f = try ParityFixture(name)
    let batch = try Batch(f)
    try f.expectAdamWMatches(lossTolerance: 1e-4, parameterTolerance: 1e-3) {
      let loss = batch.classify(f.model, B: f.B, T: f.T)
      batch.backward(f.model, B: f.B, T: f.T)
      return loss
    }
  }
}
