// What a step reports besides its loss: the global gradient norm before clipping (the figure users
// watch for instability) must be the norm of the gradients the step summed, and `clipped` must say
// whether clipping scaled the update. The measured peak's cache must only ever rise.

import AttnCore
import AttnDist
import AttnFormats
@testable import AttnTrain
import Foundation
import Testing

@Suite struct StepFiguresTests {
  private func trainer(gradClip: Double) throws -> InProcessTrainer {
    try InProcessTrainer("""
      "model": {"n_layer": 2, "n_head": 2, "n_embd": 16, "block_size": 16},
      "optimizer": {"kind": "adamw", "learning_rate": 1e-3, "grad_clip": \(gradClip)},
      "schedule": {"warmup_steps": 1},
      "training": {"batch_size": 4, "max_steps": 5}
      """)
  }

  /// One process holds the whole summed gradient after the step: its norm, in doubles, is the
  /// figure the step reported.
  @Test func gradientNormIsTheNormOfTheSummedGradients() throws {
    let setup = try trainer(gradClip: 1.0)
    defer { setup.remove() }
    for step in 0..<3 {
      let result = try setup.trainer.trainStep(step, learningRate: 1e-3, stopRequested: false)
      let gradients = setup.trainer.model.gradients
      var sum = 0.0
      for i in 0..<gradients.count { sum += Double(gradients.pointer[i]) * Double(gradients.pointer[i]) }
      #expect(result.gradientNorm > 0)
      #expect(abs(result.gradientNorm - sum.squareRoot()) <= 1e-5 * sum.squareRoot(), "step \(step)")
      #expect(result.clipped == (result.gradientNorm > 1.0))
    }
  }

  @Test func clippedSaysWhetherClippingScaledTheUpdate() throws {
    let tight = try trainer(gradClip: 1e-6)
    defer { tight.remove() }
    #expect(try tight.trainer.trainStep(0, learningRate: 1e-3, stopRequested: false).clipped)
    let off = try trainer(gradClip: 0)
    defer { off.remove() }
    let result = try off.trainer.trainStep(0, learningRate: 1e-3, stopRequested: false)
    #expect(result.gradientNorm > 0 && !result.clipped)
  }

  @Test func peakCacheKeepsTheBestEverMeasured() throws {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("attn-train-peak-\(UUID().uuidString.prefix(8))")
    defer { try? FileManager.default.removeItem(at: directory) }
    let cache = directory.appendingPathComponent("attn-train/peak-flops.json").path
    let source = MachinePeak.Source(cacheFile: cache, perCore: nil)
    let first = MachinePeak(source, threadsPerRank: 1, ranks: 1, ranksOnThisNode: 1, coresOnThisNode: 8)
    #expect(first.perCore > 1e8, "the probe measured \(first.perCore) FLOP/s")
    #expect(FileManager.default.fileExists(atPath: cache))

    // A figure above anything this machine measures stays; the probe cannot lower it.
    let key = try #require(cachedKeys(cache).first)
    let high = 1e15
    try Data("{\"\(key)\": \(high)}".utf8).write(to: URL(fileURLWithPath: cache))
    #expect(MachinePeak(source, threadsPerRank: 1, ranks: 1, ranksOnThisNode: 1, coresOnThisNode: 8).perCore == high)

    // A figure far below (a start on a busy machine) is replaced by the better measurement.
    try Data("{\"\(key)\": 1000.5}".utf8).write(to: URL(fileURLWithPath: cache))
    let raised = MachinePeak(source, threadsPerRank: 1, ranks: 1, ranksOnThisNode: 1, coresOnThisNode: 8)
    #expect(raised.perCore > 1e8)
    #expect(try cachedKeys(cache) == [key])

    // A damaged cache is measured over, not trusted.
    try Data("not json".utf8).write(to: URL(fileURLWithPath: cache))
    #expect(MachinePeak(source, threadsPerRank: 1, ranks: 1, ranksOnThisNode: 1, coresOnThisNode: 8).perCore > 1e8)
  }

  /// Each node counts its ranks' threads up to its cores.
  @Test(arguments: [
    (threads: 1, ranks: 4, local: 4, cores: 2, expected: 2), (threads: 2, ranks: 1, local: 1, cores: 8, expected: 2),
    (threads: 4, ranks: 4, local: 2, cores: 6, expected: 12), (threads: 3, ranks: 2, local: 1, cores: 2, expected: 4),
  ])
  func coresInUse(threads: Int, ranks: Int, local: Int, cores: Int, expected: Int) {
    let peak = MachinePeak(
      MachinePeak.Source(cacheFile: nil, perCore: 5e10), threadsPerRank: threads, ranks: ranks, ranksOnThisNode: local,
      coresOnThisNode: cores)
    #expect(peak.cores == expected)
    #expect(peak.flopsPerSecond == 5e10 * Double(expected))
  }

  private func cachedKeys(_ path: String) throws -> [String] {
    guard case .object(let members) = try JSONValue.parse(Data(contentsOf: URL(fileURLWithPath: path))) else { return [] }
    return members.map(\.key)
  }
}
