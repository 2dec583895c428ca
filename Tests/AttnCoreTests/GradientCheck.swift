// Finite-difference helpers for the gradient checks.
//
// Tolerance: the kernels compute in Float32. A central difference with step h has truncation error
// O(h^2) and rounding error about 1e-7 * |f| / h; objectives here are sums of O(1..100) terms
// accumulated in Double, so h = 1e-2 keeps both near 1e-4 relative. We compare whole tensors:
// ||analytic - numeric|| / max(||analytic||, ||numeric||, 1e-6) must be below 2e-3 — an order of
// magnitude above the noise measured, and orders below what a wrong term in a backward produces
// (a dropped term or a wrong sign gives errors of 1e-1 or more).

@testable import AttnCore
import Testing

let gradientTolerance = 2e-3

/// Central differences of `f` with respect to x[indices].
func numericGradient(
  _ f: () -> Double, _ x: UnsafeMutablePointer<Float>, _ indices: [Int], h: Float = 1e-2
) -> [Double] {
  indices.map { i in
    let saved = x[i]
    x[i] = saved + h
    let plus = f()
    x[i] = saved - h
    let minus = f()
    x[i] = saved
    return (plus - minus) / Double(2 * h)
  }
}

func relativeError(_ analytic: [Double], _ numeric: [Double]) -> Double {
  var diff = 0.0
  var a = 0.0
  var n = 0.0
  for (x, y) in zip(analytic, numeric) {
    diff += (x - y) * (x - y)
    a += x * x
    n += y * y
  }
  return diff.squareRoot() / max(a.squareRoot(), n.squareRoot(), 1e-6)
}

/// A buffer of deterministic pseudo-random values in [-scale, scale] (+ offset).
func randomBuffer(_ count: Int, seed: UInt64, scale: Float = 1, offset: Float = 0) -> FloatBuffer {
  let buffer = FloatBuffer(count: count)
  let key = RandomKey(seed: seed, purpose: .initialization)
  for i in 0..<count { buffer.pointer[i] = offset + scale * (2 * key.uniform(i) - 1) }
  return buffer
}

/// sum_i out[i] * weights[i] in Double: a scalar objective whose gradient with respect to out is weights.
func weightedSum(_ out: UnsafePointer<Float>, _ weights: UnsafePointer<Float>, _ n: Int) -> Double {
  var total = 0.0
  for i in 0..<n { total += Double(out[i]) * Double(weights[i]) }
  return total
}

/// Checks d(objective)/d(x) for every element of x (or a strided sample of at most `limit`).
func expectGradientMatches(
  _ label: String, analytic: UnsafePointer<Float>, x: UnsafeMutablePointer<Float>, count: Int,
  limit: Int = 400, h: Float = 1e-2, objective: () -> Double, sourceLocation: SourceLocation = #_sourceLocation
) {
  let stride = max(1, count / limit)
  let indices = Array(Swift.stride(from: 0, to: count, by: stride))
  let numeric = numericGradient(objective, x, indices, h: h)
  let analyticValues = indices.map { Double(analytic[$0]) }
  let error = relativeError(analyticValues, numeric)
  #expect(error < gradientTolerance, "\(label): relative error \(error)", sourceLocation: sourceLocation)
}
