// The masked language model against dev/reference/gpt_reference.py's GPTMaskedLM (PyTorch, float64,
// written from the math): bidirectional attention over whole sequences, and the cross-entropy of
// only the positions whose target is >= 0. For each fixture (learned positions with a tied head,
// RoPE with an untied one; B = 3 sequences of T = 8 with 2, 1 and 3 predicted positions, their
// inputs partly replaced by the mask id as BERT does) it compares the logits of the predicted rows
// ([M, V], in order), the loss, every parameter gradient and 10 steps of AdamW with clipping.
//
// A causal mask, a wrong predicted row, an unpredicted position that leaks into the loss, or a loss
// averaged over B*T instead of M moves these by 1e-2 to 1e0; float32 rounding stays near 1e-6.

@testable import AttnCore
import Testing

extension ParityFixture {
  /// A masked-language-model fixture: ParityFixture's loader reads the weights into a language model
  /// (same parameter layout), and they are copied into a masked language model of the same shape.
  init(maskedLanguageModel name: String) throws {
    let base = try ParityFixture(name)
    let meta = base.file.metadata
    #expect(meta["task"] == "masked_language_model", "\(name) is not a masked-language-model fixture")
    var shape = base.model.shape
    shape.task = .maskedLanguageModel(predictedPerSequence: Int(meta["predicted_per_sequence"]!)!)
    let model = GPT(shape: shape, maxBatch: base.B)
    #expect(model.layout.tensors == base.model.layout.tensors, "\(name): the masked model's layout differs")
    model.parameters.copy(from: base.model.parameters)
    self.name = base.name
    self.file = base.file
    self.model = model
    self.B = base.B
    self.T = base.T
  }
}

@Suite struct PyTorchMaskedParityTests {
  static let fixtures = ["parity-mlm-learned-tied", "parity-mlm-rope-untied"]

  struct Batch {
    let tokens: [Int32]
    let targets: [Int32]
    /// How many positions are predicted (target >= 0).
    let M: Int

    init(_ f: ParityFixture) throws {
      tokens = try f.file.int32s("input_tokens")
      targets = try f.file.int32s("target_tokens")
      M = targets.filter { $0 >= 0 }.count
    }

    /// Mean loss over the predicted positions, as the reference reports it (forward returns the sum).
    func forward(_ model: GPT, B: Int, T: Int) -> Double {
      model.forward(tokens: tokens, targets: targets, B: B, T: T) / Double(M)
    }

    func backward(_ model: GPT, B: Int, T: Int) {
      model.backward(tokens: tokens, targets: targets, B: B, T: T, lossScale: 1 / Float(M))
    }
  }

  // Observed over both fixtures (Swift float32 vs the float64 reference): loss <= 3.4e-8 relative
  // (about the float32 rounding of the stored value), logits of the predicted rows <= 1.7e-6 abs and
  // <= 3.4e-7 relative L2, gradients <= 8.8e-7 abs and <= 1.03e-6 relative L2 per tensor (the whole
  // qkv.bias included: its key part, exactly 0 without RoPE, is rounding noise of ~1e-9 here).
  // The bounds are about 10x that.
  @Test(arguments: fixtures)
  func logitsLossAndGradients(name: String) throws {
    let f = try ParityFixture(maskedLanguageModel: name)
    let batch = try Batch(f)
    let V = f.model.shape.vocabSize
    let loss = batch.forward(f.model, B: f.B, T: f.T)
    let expectedLoss = Double(try f.file.floats("expected.loss")[0])
    #expect(abs(loss - expectedLoss) / expectedLoss < 5e-7, "\(name) loss \(loss) vs \(expectedLoss)")
    let logits = try f.file.floats("expected.logits")
    try #require(logits.count == batch.M * V, "\(name): expected.logits is not [M, V]")
    let logitsDifference = ParityFixture.maxAbsDifference(f.model.logits, logits)
    let logitsError = ParityFixture.relativeError(f.model.logits, logits)
    #expect(
      logitsDifference < 2e-5 && logitsError < 4e-6,
      "\(name) logits: max abs difference \(logitsDifference), relative error \(logitsError)")
    f.model.zeroGradients()
    batch.backward(f.model, B: f.B, T: f.T)
    try f.expectGradientsMatch(relative: 1e-5, absolute: 1e-5)
    if !f.model.shape.tieEmbeddings {
      // With an untied head only the input lookups reach wte, and the unused id is never an input:
      // its row's gradient is exactly 0 in the reference and must be here.
      let unused = Int(f.metadata["unused_token"]!)!
      #expect(!batch.tokens.contains(Int32(unused)))
      #expect(f.embeddingGradient(of: unused).allSatisfy { $0 == 0 }, "\(name): the unused id's embedding has a gradient")
    }
  }

  // Observed: step losses <= 4.4e-7 relative; final parameters <= 2.3e-7 relative L2 per tensor,
  // except qkv.bias: 8.4e-7 without RoPE (its key part left out, as for the language model) and
  // 5.8e-6 in the RoPE fixture's h.0 (Adam amplifies a few tiny gradient elements). Bounds about 10x
  // the largest.
  @Test(arguments: fixtures)
  func tenAdamWSteps(name: String) throws {
    let f = try ParityFixture(maskedLanguageModel: name)
    let batch = try Batch(f)
    try f.expectAdamWMatches(lossTolerance: 5e-6, parameterTolerance: 6e-5) {
      let loss = batch.forward(f.model, B: f.B, T: f.T)
      batch.backward(f.model, B: f.B, T: f.T)
      return loss
    }
  }
}
