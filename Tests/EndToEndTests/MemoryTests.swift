// What a run holds stays close to what it says it will hold: the peak resident memory of a training
// run whose plan dwarfs the ~35 MiB a Swift + OpenBLAS + MPI process holds before building the model.

import Foundation
import Testing

@Suite struct MemoryTests {
  @Test func peakResidentMemoryStaysWithinTheMemoryPlan() throws {
    let dir = try Harness.temporaryDirectory("memory")
    // 6 layers, width 384, block 256, batch 8: about 600 MiB of planned buffers.
    let config = try Harness.writeConfig(in: dir, [
      "model": ["n_layer": 6, "n_head": 6, "n_embd": 384, "block_size": 256],
      "schedule": ["warmup_steps": 0],
      "training": ["batch_size": 8, "max_steps": 1, "log_interval": 1],
      "data": ["train_fraction": 0.998],
    ])
    let result = try Harness.attnTrain([config], timeout: 300)
    #expect(result.status == 0, "\(result.output)")
    let planLine = try #require(result.stdout.split(separator: "\n").first { $0.hasPrefix("memory plan per rank:") })
    let plan = try #require(Double(planLine.split(separator: " ").last { Double($0) != nil } ?? ""))
    #expect(plan > 500, "\(planLine)")
    let peakLine = try #require(result.stdout.split(separator: "\n").first { $0.hasPrefix("peak resident memory") })
    let words = peakLine.split(separator: " ")
    let peak = try #require(Double(words[words.firstIndex(of: "0:")! + 1]))
    // The bound: peak resident memory within 1.25x of the printed plan.
    #expect(peak <= 1.25 * plan, "\(peakLine) (plan \(plan) MiB)")
    #expect(peak >= plan * 0.9, "the plan should be resident at its peak: \(peakLine)")
  }
}
