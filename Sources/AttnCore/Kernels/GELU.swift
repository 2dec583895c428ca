// The exact GELU, 0.5 x (1 + erf(x / sqrt 2)): PyTorch's nn.GELU() default, which nanoGPT uses.
// erf and exp come from VectorMath.swift, eight lanes at a time.

private let inverseSqrt2: Float = 0.707_106_781_186_547_5
private let inverseSqrt2Pi: Float = 0.398_942_280_401_432_7

// MARK: - Forward

/// out[N] = gelu(inp[N])
func geluForward(
  _ out: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>, _ N: Int, _ pool: WorkerPool
) {
  pool.parallelFor(N, granularity: 4096, GELUForward(out: out, inp: inp))
}

private struct GELUForward: ParallelKernel {
  let out: UnsafeMutablePointer<Float>
  let inp: UnsafePointer<Float>

  func run(_ range: Range<Int>, thread: Int) {
    forEachChunk(range.count) { j, n in
      let i = range.lowerBound + j
      let x = load8(inp + i, n)
      store8(0.5 * x * (1 + verf(x * inverseSqrt2)), out + i, n)
    }
  }
}

// MARK: - Backward

/// dinp[N] = dout * gelu'(inp), where gelu'(x) = Phi(x) + x phi(x). May run in place (dinp == dout).
func geluBackward(
  _ dinp: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>, _ dout: UnsafePointer<Float>,
  _ N: Int, _ pool: WorkerPool
) {
  pool.parallelFor(N, granularity: 4096, GELUBackward(dinp: dinp, inp: inp, dout: dout))
}

private struct GELUBackward: ParallelKernel {
  let dinp: UnsafeMutablePointer<Float>
  let inp: UnsafePointer<Float>
  let dout: UnsafePointer<Float>

  func run(_ range: Range<Int>, thread: Int) {
    forEachChunk(range.count) { j, n in
      let i = range.lowerBound + j
      let x = load8(inp + i, n)
      let cdf = 0.5 * (1 + verf(x * inverseSqrt2))
      let pdf = inverseSqrt2Pi * vexp(-0.5 * x * x)
      store8(load8(dout + i, n) * (cdf + x * pdf), dinp + i, n)
    }
  }
}
