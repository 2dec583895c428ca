// The training step allocates nothing: every buffer exists before the first step (STYLE habit 3).
// CAllocationCounter counts the calling thread's malloc/calloc/realloc/aligned allocations.

import AttnCore
import CAllocationCounter
import Testing

@Suite struct AllocationTests {
  /// Forward, backward (with its gradient-ready callback), clipping and the optimizer, steps 3..12,
  /// with dropout on, on one thread and with a worker pool (whose dispatch runs on this thread).
  @Test(arguments: [1, 2])
  func trainingStepAllocatesNothing(threads: Int) {
    // OpenBLAS single-threaded, as ComputeThreads.set leaves it (its threaded path mallocs per call).
    ComputeThreads.set(1)
    let shape = ModelShape(
      vocabSize: 11, blockSize: 16, layers: 2, heads: 2, channels: 16, positionEncoding: .rope,
      tieEmbeddings: true, dropout: 0.1)
    let pool = threads == 1 ? WorkerPool.serial : WorkerPool(threads: threads)
    let model = GPT(shape: shape, maxBatch: 4, pool: pool)
    model.initializeParameters(seed: 1)
    let optimizer = Optimizer(settings: OptimizerSettings(kind: .adamw, weightDecay: 0.1), layout: model.layout, pool: pool)
    let tokens = UnsafeMutablePointer<Int32>.allocate(capacity: 64)
    let targets = UnsafeMutablePointer<Int32>.allocate(capacity: 64)
    defer {
      tokens.deallocate()
      targets.deallocate()
    }
    for i in 0..<64 {
      tokens[i] = Int32(i % 11)
      targets[i] = Int32((i + 1) % 11)
    }
    var announced = 0
    var allocations: [Int] = []
    for step in 0..<12 {
      if step >= 2 { attn_allocations_start() }
      let context = DropoutContext(probability: 0.1, stepKey: RandomKey(seed: 1, purpose: .dropout).then(step), firstGlobalSample: 0)
      model.zeroGradients()
      model.forward(tokens: tokens, targets: targets, B: 4, T: 16, dropout: context)
      model.backward(tokens: tokens, targets: targets, B: 4, T: 16, lossScale: 1 / 64, dropout: context) { range in
        announced += range.count
      }
      let clipping = gradientClipping(model.gradients, maxNorm: 1)
      optimizer.step(
        parameters: model.parameters, gradients: model.gradients, learningRate: 1e-3, gradientScale: clipping.scale)
      if step >= 2 { allocations.append(attn_allocations_stop()) }
    }
    #expect(allocations == [Int](repeating: 0, count: 10), "allocations per step: \(allocations)")
    #expect(announced == 12 * model.parameters.count)
  }

  /// The counter itself must see allocations, or the test above proves nothing.
  @Test func counterSeesAllocations() {
    final class Box { var value = 0 }
    attn_allocations_start()
    var boxes: [Box] = []
    for _ in 0..<5 { boxes.append(Box()) }
    let counted = attn_allocations_stop()
    #expect(counted >= 5)
    #expect(boxes.count == 5)
  }
}
