// Clipping is fused into the optimizer's pass (Optimizer.step(gradientScale:)). It must give what
// torch's clip_grad_norm_ followed by the step gives: gradients multiplied in place by the factor,
// then the update. Both are computed here, for every optimizer kind, and must agree bit for bit.

@testable import AttnCore
import Testing

@Suite struct ClippingTests {
  @Test func factorIsTorchs() {
    let gradients = FloatBuffer(count: 3)
    (gradients.pointer[0], gradients.pointer[1], gradients.pointer[2]) = (3, 4, 0)
    let clipped = gradientClipping(gradients, maxNorm: 1)
    #expect(clipped.norm == 5)
    #expect(clipped.scale == Float(1) / (5 + 1e-6))
    #expect(gradientClipping(gradients, maxNorm: 10).scale == 1)
    #expect(gradientClipping(gradients, maxNorm: 0) == (norm: 5, scale: 1))
  }

  @Test(arguments: [
    OptimizerSettings(kind: .sgd, weightDecay: 0.01),
    OptimizerSettings(kind: .sgd, weightDecay: 0.01, momentum: 0.9, nesterov: true),
    OptimizerSettings(kind: .adam, weightDecay: 0.01),
    OptimizerSettings(kind: .adamw, weightDecay: 0.1),
    OptimizerSettings(kind: .rmsprop, weightDecay: 0.01, momentum: 0.5),
  ])
  func fusedScalingEqualsScalingInPlace(settings: OptimizerSettings) {
    let layout = ParameterLayout(ModelShape(vocabSize: 11, blockSize: 8, layers: 1, heads: 2, channels: 8))
    let n = layout.count
    let start = randomBuffer(n, seed: 1)
    let gradients = randomBuffer(n, seed: 2, scale: 3)
    let (fused, inPlace) = (FloatBuffer(count: n), FloatBuffer(count: n))
    fused.pointer.update(from: start.pointer, count: n)
    inPlace.pointer.update(from: start.pointer, count: n)
    let fusedOptimizer = Optimizer(settings: settings, layout: layout, pool: .serial)
    let inPlaceOptimizer = Optimizer(settings: settings, layout: layout, pool: .serial)
    let scaled = FloatBuffer(count: n)
    for step in 0..<3 {
      let clipping = gradientClipping(gradients, maxNorm: 0.5)
      #expect(clipping.scale < 1, "step \(step): the test must clip")
      fusedOptimizer.step(parameters: fused, gradients: gradients, learningRate: 0.01, gradientScale: clipping.scale)
      for i in 0..<n { scaled.pointer[i] = gradients.pointer[i] * clipping.scale }
      inPlaceOptimizer.step(parameters: inPlace, gradients: scaled, learningRate: 0.01)
    }
    let differing = (0..<n).filter { fused.pointer[$0] != inPlace.pointer[$0] }.count
    #expect(differing == 0, "\(differing) of \(n) parameters differ")
    #expect((0..<n).contains { fused.pointer[$0] != start.pointer[$0] }, "the steps must move the parameters")
  }
}
