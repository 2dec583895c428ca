// The exact GELU, x Phi(x) = 0.5 x (1 + erf(x / sqrt 2)): PyTorch's nn.GELU() default, which
// nanoGPT uses. The forward keeps Phi(x), so the backward computes no erf. erf and exp come from
// VectorMath.swift, eight lanes at a time. The loops are written out rather than given to
// forEachChunk: its closure, with erf and exp inlined into it, became a function called per chunk
// (measured 15% slower for the backward).

private let inverseSqrt2: Float = 0.707_106_781_186_547_5
private let inverseSqrt2Pi: Float = 0.398_942_280_401_432_7

/// Phi(x), the standard normal CDF. erf's rational approximation dips a few ulp below -1 near -4,
/// so Phi is held at 0 from below.
@_transparent
private func normalCDF(_ x: Float8) -> Float8 {
  let cdf = 0.5 * (1 + verf(x * inverseSqrt2))
  return cdf.replacing(with: 0, where: cdf .< Float8(repeating: 0))
}

/// What the forward keeps for the backward: Phi(x), or x itself where float's Phi(x) is 0 (below
/// x = -5.1, where erf rounds to -1), which the sign tells apart.
@_transparent
private func kept(_ x: Float8, cdf: Float8) -> Float8 {
  cdf.replacing(with: x, where: cdf .== Float8(repeating: 0))
}

/// gelu'(x) = Phi(x) + x phi(x) from what the forward kept and gelu(x) = x Phi(x):
/// x = gelu(x) / Phi(x) (or x as kept), so only phi's exp is left to compute (1.0 ns a value on 1
/// thread against 1.4 for erf and exp from x).
@_transparent
private func geluDerivative(kept: Float8, out: Float8) -> Float8 {
  // Kept x values lie below -5 and Phi is never negative, so -1 tells them apart. (A test against 0
  // became an integer sign test that split the loop into 4-lane halves, 1.75x slower; so did a
  // second select on the same mask.)
  let keptX = kept .< Float8(repeating: -1)
  let x = (out / kept).replacing(with: kept, where: keptX)
  let pdf = inverseSqrt2Pi * vexp(-0.5 * x * x)
  // Where x was kept, Phi(x) is 0 and gelu'(x) = x phi(x).
  return kept.addingProduct(x, pdf).replacing(with: x * pdf, where: keptX)
}

// MARK: - Forward

/// out[N] = gelu(inp[N]) = inp Phi(inp), and cdf[N] = Phi(inp) for the backward pass (inp itself
/// where that is 0). cdf may be inp: the pre-activation is not needed again.
func geluForward(
  _ out: UnsafeMutablePointer<Float>, cdf: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>,
  _ N: Int, _ pool: WorkerPool
) {
  pool.parallelFor(N, granularity: 4096, GELUForward(out: out, cdf: cdf, inp: inp))
}

private struct GELUForward: ParallelKernel {
  let out, cdf: UnsafeMutablePointer<Float>
  let inp: UnsafePointer<Float>

  func run(_ range: Range<Int>, thread: Int) {
    var i = range.lowerBound
    while i + 8 <= range.upperBound {
      let x = load8(inp + i, 8)
      let phi = normalCDF(x)
      store8(x * phi, out + i, 8)
      store8(kept(x, cdf: phi), cdf + i, 8)
      i += 8
    }
    let rest = range.upperBound - i
    if rest > 0 {
      let x = load8(inp + i, rest)
      let phi = normalCDF(x)
      store8(x * phi, out + i, rest)
      store8(kept(x, cdf: phi), cdf + i, rest)
    }
  }
}

// MARK: - Backward

/// dinp[N] = dout * gelu'(x), given cdf and out = gelu(x) from geluForward. May run in place
/// (dinp == dout).
func geluBackward(
  _ dinp: UnsafeMutablePointer<Float>, cdf: UnsafePointer<Float>, out: UnsafePointer<Float>,
  _ dout: UnsafePointer<Float>, _ N: Int, _ pool: WorkerPool
) {
  pool.parallelFor(N, granularity: 4096, GELUBackward(dinp: dinp, cdf: cdf, out: out, dout: dout))
}

private struct GELUBackward: ParallelKernel {
  let dinp: UnsafeMutablePointer<Float>
  let cdf, out, dout: UnsafePointer<Float>

  func run(_ range: Range<Int>, thread: Int) {
    var i = range.lowerBound
    while i + 8 <= range.upperBound {
      store8(load8(dout + i, 8) * geluDerivative(kept: load8(cdf + i, 8), out: load8(out + i, 8)), dinp + i, 8)
      i += 8
    }
    let rest = range.upperBound - i
    if rest > 0 {
      let derivative = geluDerivative(kept: load8(cdf + i, rest), out: load8(out + i, rest))
      store8(load8(dout + i, rest) * derivative, dinp + i, rest)
    }
  }
}
