// Cross-entropy from logits through log-sum-exp, so no probability underflows to log(0).
// N rows (B*T positions), V classes. The forward keeps each row's log-sum-exp; the backward turns
// the logits into their gradient in place, since nothing needs the logits after the loss.

#if canImport(Glibc)
  import Glibc
#else
  import Darwin
#endif

// MARK: - Forward

/// losses[N] = lse(logits[n]) - logits[n, targets[n]];  lse[N] is written.
func crossEntropyForward(
  _ losses: UnsafeMutablePointer<Float>, _ lse: UnsafeMutablePointer<Float>,
  _ logits: UnsafePointer<Float>, _ targets: UnsafePointer<Int32>,
  _ N: Int, _ V: Int, _ pool: WorkerPool
) {
  pool.parallelFor(N, CrossEntropyForward(losses: losses, lse: lse, logits: logits, targets: targets, V: V))
}

private struct CrossEntropyForward: ParallelKernel {
  let losses, lse: UnsafeMutablePointer<Float>
  let logits: UnsafePointer<Float>
  let targets: UnsafePointer<Int32>
  let V: Int

  func run(_ rows: Range<Int>, thread: Int) {
    for n in rows {
      let z = logits + n * V
      var maxValue = -Float.infinity
      for j in 0..<V where z[j] > maxValue { maxValue = z[j] }
      var sums = Float8(repeating: 0)
      forEachChunk(V) { j, count in sums += keepFirst(vexp(load8(z + j, count) - maxValue), count) }
      let logSumExp = maxValue + logf(sums.sum())
      lse[n] = logSumExp
      losses[n] = logSumExp - z[Int(targets[n])]
    }
  }
}

// MARK: - Backward

/// logits[N, V] becomes dlogits = (softmax - onehot(target)) * scale  (=, in place).
/// `scale` is d(total loss)/d(loss of a row): 1/(number of tokens averaged) in training.
func crossEntropyBackwardInPlace(
  _ logits: UnsafeMutablePointer<Float>, _ lse: UnsafePointer<Float>,
  _ targets: UnsafePointer<Int32>, scale: Float,
  _ N: Int, _ V: Int, _ pool: WorkerPool
) {
  pool.parallelFor(N, CrossEntropyBackward(logits: logits, lse: lse, targets: targets, scale: scale, V: V))
}

private struct CrossEntropyBackward: ParallelKernel {
  let logits: UnsafeMutablePointer<Float>
  let lse: UnsafePointer<Float>
  let targets: UnsafePointer<Int32>
  let scale: Float
  let V: Int

  func run(_ rows: Range<Int>, thread: Int) {
    for n in rows {
      let z = logits + n * V
      let l = lse[n]
      forEachChunk(V) { j, count in store8(vexp(load8(z + j, count) - l) * scale, z + j, count) }
      z[Int(targets[n])] -= scale
    }
  }
}
