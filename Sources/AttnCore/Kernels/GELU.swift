// The exact GELU, x Phi(x) = 0.5 x (1 + erf(x / sqrt 2)): PyTorch's nn.GELU() default, which
// nanoGPT uses. The forward keeps the derivative, Phi(x) + x phi(x), so the backward is one
// multiply per value: computing phi's exp while x is at hand is cheaper than recovering x later by
// a division and then the exp (1.1 ns a value for the whole backward when it kept Phi). Phi itself
// reuses that exp (geluAndSlope): tiny's forward GELU went from 0.7 to 0.6 ms a step against a
// rational erf beside the exp. exp comes from VectorMath.swift, eight lanes at a time. The forward's
// loop is written out rather than given to forEachChunk: a closure with the exp inlined into it
// became a function called per chunk (measured 15% slower).

import CPrefetch

private let inverseSqrt2: Float = 0.707_106_781_186_547_5
private let inverseSqrt2Pi: Float = 0.398_942_280_401_432_7

/// gelu(x) and gelu'(x) = Phi(x) + x phi(x), with phi's exp shared by Phi: for z = |x| / sqrt 2,
/// 1 - erf(z) = t P(t) e^(-z^2) with t = 1 / (1 + 0.3275911 z) and P of degree 4 (Abramowitz and
/// Stegun 7.1.26, error below 1.5e-7), where e^(-z^2) = e^(-x^2 / 2) is phi's own exponential. So
/// Phi(-|x|) = t P(t) e^(-z^2) / 2, and Phi(x) = 1/2 + sign(x) (1/2 - Phi(-|x|)), the sign set by
/// its bit: no comparison.
@_transparent
private func geluAndSlope(_ x: Float8) -> (value: Float8, slope: Float8) {
  let gaussian = vexp(-0.5 * x * x)
  let bits = unsafeBitCast(x, to: SIMD8<UInt32>.self)
  let z = unsafeBitCast(bits & 0x7FFF_FFFF, to: Float8.self) * inverseSqrt2
  let t = 1 / Float8(repeating: 1).addingProduct(z, Float8(repeating: 0.327_591_1))
  var poly = Float8(repeating: 1.061_405_429)
  poly = Float8(repeating: -1.453_152_027).addingProduct(poly, t)
  poly = Float8(repeating: 1.421_413_741).addingProduct(poly, t)
  poly = Float8(repeating: -0.284_496_736).addingProduct(poly, t)
  poly = Float8(repeating: 0.254_829_592).addingProduct(poly, t)
  let lowerTail = 0.5 * (poly * t) * gaussian
  let halfSpan = unsafeBitCast(
    unsafeBitCast(0.5 - lowerTail, to: SIMD8<UInt32>.self) | (bits & 0x8000_0000), to: Float8.self)
  let cdf = 0.5 + halfSpan
  return (x * cdf, cdf.addingProduct(x, inverseSqrt2Pi * gaussian))
}

// MARK: - Forward

/// out[N] = gelu(inp[N]) = inp Phi(inp), and slope[N] = gelu'(inp) for the backward pass. slope may
/// be inp: the pre-activation is not needed again.
func geluForward(
  _ out: UnsafeMutablePointer<Float>, slope: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>,
  _ N: Int, _ pool: WorkerPool
) {
  pool.parallelFor(N, granularity: 4096, GELUForward(out: out, slope: slope, inp: inp))
}

private struct GELUForward: ParallelKernel {
  let out, slope: UnsafeMutablePointer<Float>
  let inp: UnsafePointer<Float>

  func run(_ range: Range<Int>, thread: Int) {
    var i = range.lowerBound
    while i + 8 <= range.upperBound {
      let (value, derivative) = geluAndSlope(load8(inp + i, 8))
      store8(value, out + i, 8)
      store8(derivative, slope + i, 8)
      i += 8
    }
    let rest = range.upperBound - i
    if rest > 0 {
      let (value, derivative) = geluAndSlope(load8(inp + i, rest))
      store8(value, out + i, rest)
      store8(derivative, slope + i, rest)
    }
  }
}

// MARK: - Backward

/// dinp[N] = dout * slope, with slope as geluForward kept it. May run in place (dinp == dout).
func geluBackward(
  _ dinp: UnsafeMutablePointer<Float>, slope: UnsafePointer<Float>, _ dout: UnsafePointer<Float>,
  _ N: Int, _ pool: WorkerPool
) {
  pool.parallelFor(N, granularity: 4096, GELUBackward(dinp: dinp, slope: slope, dout: dout))
}

private struct GELUBackward: ParallelKernel {
  let dinp: UnsafeMutablePointer<Float>
  let slope, dout: UnsafePointer<Float>

  func run(_ range: Range<Int>, thread: Int) {
    forEachChunk(in: range) { i, count in store8(load8(dout + i, count) * load8(slope + i, count), dinp + i, count) }
  }
}

// MARK: - Fused with the MLP's projection

/// dinp = sums * slope: matmulBackward's input gradient when its input was GELU's output.
struct GELUGradientStore: PanelEpilogue {
  let dinp: UnsafeMutablePointer<Float>
  let ld: Int
  let slope: UnsafePointer<Float>

  @inline(__always)
  func prefetch(row: Int, column: Int) {
    prefetch_for_writing(dinp + row * ld + column)
    prefetch_for_reading(slope + row * ld + column)
  }

  @inline(__always)
  func store(_ sums: Float8, row: Int, column: Int, width: Int) {
    let offset = row * ld + column
    store8(sums * load8(slope + offset, width), dinp + offset, width)
  }
}
