// A step's micro-steps in the trainer: the first writes the parameter gradients, the later ones add
// to them, and the next step starts afresh. Clipping scales only the update, so after each step the
// gradient buffer must hold, bit for bit, what zeroing and then adding every micro-step gives.

import AttnCore
import AttnDist
import AttnTrain
import Foundation
import Testing

@Suite struct GradientAccumulationTests {
  @Test func eachStepsGradientsAreTheSumOfItsOwnMicroSteps() throws {
    let (batch, microSteps) = (2, 3)
    let setup = try InProcessTrainer("""
      "model": {"n_layer": 2, "n_head": 2, "n_embd": 16, "block_size": 16, "dropout": 0.1},
      "schedule": {"warmup_steps": 1},
      "training": {"batch_size": \(batch), "grad_accum_steps": \(microSteps), "max_steps": 5}
      """)
    defer { setup.remove() }
    let (trainer, config, data) = (setup.trainer, setup.config, setup.text)
    let shape = trainer.model.shape
    let T = shape.blockSize
    let reference = GPT(shape: shape, maxBatch: batch)
    let sampler = BatchSampler(seed: config.training.seed, sequenceLength: T, tokenCount: data.train.count)
    var tokens = [Int32](repeating: 0, count: batch * T)
    var targets = [Int32](repeating: 0, count: batch * T)
    for step in 0..<2 {
      reference.parameters.copy(from: trainer.model.parameters)
      _ = try trainer.trainStep(step, learningRate: 1e-3, stopRequested: false)
      reference.zeroGradients()
      for micro in 0..<microSteps {
        try sampler.fill(
          tokens: &tokens, targets: &targets, from: data.train, vocabularySize: data.tokenizer.vocabSize, step: step,
          microStep: micro, firstSample: 0, count: batch)
        let context = DropoutContext(
          probability: shape.dropout,
          stepKey: RandomKey(seed: config.training.seed, purpose: .dropout).then(step).then(micro),
          firstGlobalSample: 0)
        reference.forward(tokens: tokens, targets: targets, B: batch, T: T, dropout: context)
        reference.backward(
          tokens: tokens, targets: targets, B: batch, T: T, lossScale: Float(1.0 / Double(batch * microSteps * T)),
          dropout: context)
      }
      #expect(Array(trainer.model.gradients.buffer) == Array(reference.gradients.buffer), "step \(step)")
    }
  }
}
