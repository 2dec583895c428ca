// The main job learns: Configs/shakespeare-char.json as shipped (nanoGPT's CPU configuration,
// 2000 steps) reaches a dev loss at or below 1.90 over the whole dev split. nanoGPT reports 1.88 for
// this configuration, and a PyTorch run of it on this kind of machine reached 1.878. About two
// minutes on 2 cores, the longest test of the suite.

import Foundation
import Testing

@Suite struct LearningTests {
  @Test func shakespeareCharReachesDevLoss190() throws {
    let dir = try Harness.temporaryDirectory("learning")
    let config = Harness.repository.appendingPathComponent("Configs/shakespeare-char.json").path
    let run = dir.appendingPathComponent("run").path
    // The default thread count (cores / ranks), as the README's command runs it.
    let result = try Harness.attnTrain(
      [config, "--run-dir", run], environment: ["ATTN_TRAIN_THREADS": "\(ProcessInfo.processInfo.activeProcessorCount)"],
      timeout: 900)
    #expect(result.status == 0, "\(result.output)")
    let evaluations = try Harness.metrics(runDirectory: run).compactMap { record -> (Int, Double)? in
      guard let step = record["step"], let loss = record["dev_loss"] else { return nil }
      return (Int(step), loss)
    }
    let final = try #require(evaluations.last, "no dev loss logged:\n\(result.output)")
    #expect(final.0 == 2000)
    #expect(final.1 <= 1.90, "dev loss \(final.1) at step \(final.0)")
    // Learning, not luck: the dev loss falls from evaluation to evaluation early on.
    #expect(evaluations.count == 8 && evaluations[0].1 > evaluations[3].1 && evaluations[3].1 > final.1)
  }
}
