// The trainer's whole step allocates nothing: batch sampling (and a masked language model's
// masking), forward and backward with dropout, the bucketed gradient reduction, the loss/stop
// reduction, clipping and the optimizer.

import AttnCore
import AttnDist
import AttnTrain
import CAllocationCounter
import Foundation
import Testing

@Suite struct TrainerAllocationTests {
  @Test(arguments: [false, true])
  func trainStepAllocatesNothingAfterWarmUp(masked: Bool) throws {
    // As attn-train does at start. (A multi-threaded OpenBLAS mallocs a job list in every sgemm
    // above its small-matrix size: measured here, one per call.)
    ComputeThreads.set(1)
    let setup = try InProcessTrainer("""
      "model": {"n_layer": 2, "n_head": 2, "n_embd": 32, "block_size": 32, "dropout": 0.1},
      "schedule": {"warmup_steps": 2},
      "training": {"batch_size": 4, "grad_accum_steps": 2, "max_steps": 20, "gradient_bucket_mb": 0.01}
      \(masked ? InProcessRanksTests.maskedSections.task : "")
      """, dataSection: masked ? InProcessRanksTests.maskedSections.data : nil)
    defer { setup.remove() }
    let trainer = setup.trainer
    var allocations: [Int] = []
    for step in 0..<12 {
      if step >= 2 { attn_allocations_start() }
      _ = try trainer.trainStep(step, learningRate: 1e-3, stopRequested: false)
      if step >= 2 { allocations.append(attn_allocations_stop()) }
    }
    #expect(allocations == [Int](repeating: 0, count: 10), "allocations per step: \(allocations)")
  }
}
