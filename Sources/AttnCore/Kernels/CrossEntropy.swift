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
  pool.parallelFor(N) { rows, _ in
  for n in rows {
    let z = logits + n * V
    var maxValue = -Float.infinity
    for j in 0..<V where z[j] > maxValue { maxValue = z[j] }
    var sums = Float8(repeating: 0)
    forEachChunk(V) { j, count in
      let e = vexp(load8(z + j, count) - maxValue)
      sums += keepFirst(e, count)
    }
    let logSumExp = maxValue + logf(sums.sum())
    lse[n] = logSumExp
    losses[n] = logSumExp - z[Int(targets[n])]
  }
  }
}

// MARK: - Backward

/// logits[N, V] becomes dlogits = (softmax - onehot(target)) * scale[n]  (=, in place).
/// `scale` is d(total loss)/d(loss of row n): 1/(number of rows averaged) in training.
func crossEntropyBackwardInPlace(
  _ logits: UnsafeMutablePointer<Float>, _ lse: UnsafePointer<Float>,
  _ targets: UnsafePointer<Int32>, scale: Float,
  _ N: Int, _ V: Int, _ pool: WorkerPool
) {
  pool.parallelFor(N) { rows, _ in
  for n in rows {
    let z = logits + n * V
    let l = lse[n]
    forEachChunk(V) { j, count in store8(vexp(load8(z + j, count) - l) * scale, z + j, count) }
    z[Int(targets[n])] -= scale
  }
  }
}
