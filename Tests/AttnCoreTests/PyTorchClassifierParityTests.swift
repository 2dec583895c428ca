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
    "parity-classifier-bidirectional-max-hidden", "parity-classifier-causal-max-smoothing",
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
  // Observed over the six fixtures: loss <= 1.9e-7 relative, logits <= 1.7e-6 abs, gradients
  // <= 8.5e-7 abs and <= 2.0e-6 relative L2 per tensor. The bounds are about 10x that; an unmasked
  // key, a wrong pooled row or a wrong loss weighting moves them by 1e-3 to 1e0.
  @Test(arguments: fixtures)
  func logitsLossAndGradients(name: String) throws {
    let f = try ParityFixture(name)
    let batch = try Batch(f)
    let loss = batch.classify(f.model, B: f.B, T: f.T)
    let expectedLoss = Double(try f.file.floats("expected.loss")[0])
    #expect(abs(loss - expectedLoss) / expectedLoss < 2e-6, "\(name) loss \(loss) vs \(expectedLoss)")
    let logits = try f.file.floats("expected.logits")
    let logitsDifference = ParityFixture.maxAbsDifference(f.model.logits, logits)
    #expect(logitsDifference < 2e-5, "\(name) logits: max abs difference \(logitsDifference)")
    f.model.zeroGradients()
    batch.backward(f.model, B: f.B, T: f.T)
    try f.expectGradientsMatch(relative: 2e-5, absolute: 1e-5)
    let pad = Int(f.metadata["pad_token"]!)!
    #expect(f.embeddingGradient(of: pad).allSatisfy { $0 == 0 }, "\(name): the padding id's embedding has a gradient")
  }

  // Observed: step losses <= 6.2e-7 relative, final parameters <= 1.5e-5 relative L2 per tensor
  // (the largest in a RoPE fixture's h.1.attn.qkv.bias; without RoPE the key bias is left out, as
  // for the language model). Bounds about 10x that.
  @Test(arguments: fixtures)
  func tenAdamWSteps(name: String) throws {
    let f = try ParityFixture(name)
    let batch = try Batch(f)
    try f.expectAdamWMatches(lossTolerance: 1e-5, parameterTolerance: 2e-4) {
      let loss = batch.classify(f.model, B: f.B, T: f.T)
      batch.backward(f.model, B: f.B, T: f.T)
      return loss
    }
  }
}
