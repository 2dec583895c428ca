// A fixture of dev/reference/make_parity_fixtures.py (PyTorch, float64, written from
// dev/MODEL_SPEC.md) loaded into a model, and the comparisons the parity tests share: every gradient
// tensor, and ten steps of AdamW.

@testable import AttnCore
import AttnFormats
import Foundation
import Testing

struct ParityFixture {
  let name: String
  let file: SafeTensorsFile
  let model: GPT
  let B: Int
  let T: Int

  init(_ name: String) throws {
    self.name = name
    let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
      .appendingPathComponent("Fixtures/\(name).safetensors").path
    file = try SafeTensorsFile(path: path)
    let meta = file.metadata
    func int(_ key: String) -> Int { Int(meta[key]!)! }
    var task = ModelTask.languageModel
    if meta["task"] == "classifier" {
      task = .classifier(
        ClassifierShape(
          classes: int("num_classes"), pooling: Pooling(rawValue: meta["pooling"]!)!,
          attention: AttentionKind(rawValue: meta["attention"]!)!, hidden: int("hidden")))
    }
    let shape = ModelShape(
      vocabSize: int("vocab_size"), blockSize: int("block_size"), layers: int("n_layer"),
      heads: int("n_head"), channels: int("n_embd"),
      positionEncoding: PositionEncoding(rawValue: meta["position_encoding"]!)!,
      tieEmbeddings: meta["tie_embeddings"].map { $0 == "true" } ?? true, task: task)
    B = int("batch")
    T = int("seq_len")
    model = GPT(shape: shape, maxBatch: B)
    for tensor in model.layout.tensors {
      try file.readFloats(tensor.name, into: .init(start: model.parameters.pointer + tensor.offset, count: tensor.count))
    }
  }

  var metadata: [String: String] { file.metadata }

  func number(_ key: String) -> Float { Float(metadata[key]!)! }

  /// Relative L2 error between two tensors.
  static func relativeError(_ a: UnsafePointer<Float>, _ b: [Float]) -> Double {
    var diff = 0.0
    var norm = 0.0
    for i in 0..<b.count {
      diff += Double(a[i] - b[i]) * Double(a[i] - b[i])
      norm += Double(b[i]) * Double(b[i])
    }
    return (diff / max(norm, 1e-30)).squareRoot()
  }

  /// The gradient of token `id`'s embedding row (wte), after a backward.
  func embeddingGradient(of id: Int) -> UnsafeBufferPointer<Float> {
    let C = model.shape.channels
    return UnsafeBufferPointer(start: model.gradients.pointer + model.layout["wte"]!.offset + id * C, count: C)
  }

  static func maxAbsDifference(_ a: UnsafePointer<Float>, _ b: [Float]) -> Double {
    (0..<b.count).reduce(0) { max($0, abs(Double(a[$1]) - Double(b[$1]))) }
  }

  /// Every tensor of the model's gradient buffer against grad.<name>: relative L2 error below
  /// `relative`, and no element further than `absolute` from it.
  func expectGradientsMatch(relative: Double, absolute: Double = .infinity, sourceLocation: SourceLocation = #_sourceLocation) throws {
    for tensor in model.layout.tensors {
      let expected = try file.floats("grad.\(tensor.name)")
      let actual = model.gradients.pointer + tensor.offset
      let error = Self.relativeError(actual, expected)
      let difference = Self.maxAbsDifference(actual, expected)
      #expect(
        error < relative && difference < absolute,
        "\(name) grad.\(tensor.name): relative error \(error), max abs difference \(difference)",
        sourceLocation: sourceLocation)
    }
  }

  /// Ten AdamW steps with the fixture's settings, clipping as the reference does; `lossAndGradients`
  /// runs forward and backward into zeroed gradients and returns the mean loss. Checks the loss of
  /// every step and the parameters after the last.
  func expectAdamWMatches(
    lossTolerance: Double, parameterTolerance: Double, sourceLocation: SourceLocation = #_sourceLocation,
    lossAndGradients: () -> Double
  ) throws {
    let optimizer = Optimizer(
      settings: OptimizerSettings(
        kind: .adamw, weightDecay: number("adamw_weight_decay"), beta1: number("adamw_beta1"),
        beta2: number("adamw_beta2"), eps: number("adamw_eps")),
      layout: model.layout)
    let expectedLosses = try file.floats("expected.adamw_losses")
    for step in 0..<Int(metadata["adamw_steps"]!)! {
      model.zeroGradients()
      let loss = lossAndGradients()
      let error = abs(loss - Double(expectedLosses[step])) / Double(expectedLosses[step])
      #expect(error < lossTolerance, "\(name) step \(step): \(loss) vs \(expectedLosses[step])", sourceLocation: sourceLocation)
      let clipping = gradientClipping(model.gradients, maxNorm: number("grad_clip"))
      optimizer.step(
        parameters: model.parameters, gradients: model.gradients, learningRate: number("adamw_lr"),
        gradientScale: clipping.scale)
    }
    for tensor in model.layout.tensors {
      var expected = try file.floats("expected.adamw_final.\(tensor.name)")
      var actual = Array(UnsafeBufferPointer(start: model.parameters.pointer + tensor.offset, count: tensor.count))
      if tensor.name.hasSuffix("attn.qkv.bias") && model.shape.positionEncoding != .rope {
        // Without RoPE the loss does not depend on the key bias (softmax is shift-invariant per row),
        // so its true gradient is 0 and Adam amplifies float32 rounding noise there to steps of ~lr:
        // PyTorch float32 misses the reference by 4e-3 on it too. Compare the q and v parts only.
        let C = model.shape.channels
        expected.removeSubrange(C..<(2 * C))
        actual.removeSubrange(C..<(2 * C))
      }
      let error = actual.withUnsafeBufferPointer { Self.relativeError($0.baseAddress!, expected) }
      #expect(
        error < parameterTolerance, "\(name) \(tensor.name) after AdamW: relative error \(error)",
        sourceLocation: sourceLocation)
    }
  }
}
