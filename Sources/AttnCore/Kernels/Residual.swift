// The residual connection x + branch(x). Its backward needs no kernel: the gradient flows to both
// inputs unchanged, which GPT.backward expresses by reusing the residual-stream gradient.

// MARK: - Forward

/// out[N] = inp[N] + branch[N]
func residualForward(
  _ out: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>, _ branch: UnsafePointer<Float>,
  _ N: Int, _ pool: WorkerPool
) {
  pool.parallelFor(N, granularity: 4096, ResidualForward(out: out, inp: inp, branch: branch))
}

private struct ResidualForward: ParallelKernel {
  let out: UnsafeMutablePointer<Float>
  let inp, branch: UnsafePointer<Float>

  func run(_ range: Range<Int>, thread: Int) {
    for i in range { out[i] = inp[i] + branch[i] }
  }
}
