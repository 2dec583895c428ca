// The whole trainer at N ranks without mpirun: ranks are threads with an InProcessCommunicator, so
// batch shares, dropout keys, the reduce-scatter during backward, clipping by the ranks' summed norm,
// the sharded update and the gathers all run in the unit tests. (The same under real mpirun, on the
// binary: EndToEndTests/MPITests.swift.)

import AttnCore
import AttnDist
import AttnTrain
import Foundation
import Testing

@Suite struct InProcessRanksTests {
  // dropout and grad_accum 2, so the shares and the dropout masks must be keyed by global sample;
  // 2 KB buckets, smaller than most tensors: many buckets and uneven shares.
  static func sections(reduceDuringBackward: Bool) -> String {
    """
    "model": {"n_layer": 2, "n_head": 2, "n_embd": 32, "block_size": 32, "dropout": 0.1},
    "training": {"batch_size": 12, "grad_accum_steps": 2, "gradient_bucket_mb": 0.002,
                 "reduce_during_backward": \(reduceDuringBackward)}
    """
  }

  struct Curve: Sendable, Equatable {
    let losses: [Double]
    let parameterBits: [UInt32]
  }

  /// A masked language model on Tiny Shakespeare with a learned BPE that has [MASK]: the masking is
  /// keyed by global sample too, and a step's loss is a mean over a count no rank has to be told.
  static let maskedSections = (
    task: #", "task": {"kind": "masked_language_model", "mask_probability": 0.2}"#,
    data: """
      {"train_path": "\(URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("data/tinyshakespeare/input.txt").path)",
       "tokenizer": {"kind": "bpe", "vocab_size": 320, "special_tokens": ["[MASK]"]}}
      """
  )

  static func train(ranks: Int, reduceDuringBackward: Bool = true, steps: Int = 12, masked: Bool = false) throws -> [Curve] {
    let sections = Self.sections(reduceDuringBackward: reduceDuringBackward) + (masked ? Self.maskedSections.task : "")
    return try InProcessCommunicator.run(ranks: ranks) { communicator in
      let setup = try InProcessTrainer(sections, dataSection: masked ? Self.maskedSections.data : nil, communicator: communicator)
      defer { setup.remove() }
      var losses: [Double] = []
      for step in 0..<steps {
        losses.append(try setup.trainer.trainStep(step, learningRate: 1e-3, stopRequested: false).loss)
      }
      return Curve(losses: losses, parameterBits: setup.trainer.model.parameters.buffer.map(\.bitPattern))
    }
  }

  @Test(arguments: [2, 3, 4])
  func nRanksTrainTheCurveOfOneAndStayIdentical(ranks: Int) throws {
    let single = try #require(try Self.train(ranks: 1).first)
    let curves = try Self.train(ranks: ranks)
    // Every replica holds the same bits: each parameter comes from the one rank that updated it.
    #expect(curves.allSatisfy { $0 == curves[0] })
    // The same sums as one process, grouped differently (each rank adds its share of the batch, the
    // reduce-scatter adds the ranks' terms, the norm is a sum of the ranks' parts): rounding only,
    // ~1e-7 relative in a gradient, which stays far below 1e-5 over 12 steps at this learning rate.
    // A wrong split, scale or dropout key moves the loss by 1e-4 relative or more from the first step.
    for (step, (one, many)) in zip(single.losses, curves[0].losses).enumerated() {
      #expect(abs(one - many) <= 1e-5 * abs(one), "step \(step): 1 rank \(one), \(ranks) ranks \(many)")
    }
  }

  @Test(arguments: [2, 4])
  func aMaskedLanguageModelAtNRanksTrainsTheCurveOfOne(ranks: Int) throws {
    let single = try #require(try Self.train(ranks: 1, masked: true).first)
    let curves = try Self.train(ranks: ranks, masked: true)
    #expect(curves.allSatisfy { $0 == curves[0] })
    for (step, (one, many)) in zip(single.losses, curves[0].losses).enumerated() {
      #expect(abs(one - many) <= 1e-5 * abs(one), "step \(step): 1 rank \(one), \(ranks) ranks \(many)")
    }
  }

  @Test func reducingAfterBackwardGivesTheSameBitsAsDuringIt() throws {
    #expect(try Self.train(ranks: 3, reduceDuringBackward: false) == Self.train(ranks: 3, reduceDuringBackward: true))
  }
}
