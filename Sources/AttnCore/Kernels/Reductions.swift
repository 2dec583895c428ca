// Float reductions with explicit SIMD accumulators: Swift auto-vectorises elementwise loops but not
// reductions (a layernorm-style pass measured ~26 ms scalar vs ~7 ms with SIMD8 here). Eight lanes of
// partial sums also fix the summation order, so results do not depend on the compiler's choices.

@inline(__always)
func simdSum(_ x: UnsafePointer<Float>, _ n: Int) -> Float {
  var acc0 = SIMD8<Float>(repeating: 0)
  var acc1 = SIMD8<Float>(repeating: 0)
  var i = 0
  while i + 16 <= n {
    acc0 += UnsafeRawPointer(x + i).loadUnaligned(as: SIMD8<Float>.self)
    acc1 += UnsafeRawPointer(x + i + 8).loadUnaligned(as: SIMD8<Float>.self)
    i += 16
  }
  var total = (acc0 + acc1).sum()
  while i < n {
    total += x[i]
    i += 1
  }
  return total
}

@inline(__always)
func simdDot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
  var acc0 = SIMD8<Float>(repeating: 0)
  var acc1 = SIMD8<Float>(repeating: 0)
  var i = 0
  while i + 16 <= n {
    let a0 = UnsafeRawPointer(a + i).loadUnaligned(as: SIMD8<Float>.self)
    let b0 = UnsafeRawPointer(b + i).loadUnaligned(as: SIMD8<Float>.self)
    let a1 = UnsafeRawPointer(a + i + 8).loadUnaligned(as: SIMD8<Float>.self)
    let b1 = UnsafeRawPointer(b + i + 8).loadUnaligned(as: SIMD8<Float>.self)
    acc0.addProduct(a0, b0)
    acc1.addProduct(a1, b1)
    i += 16
  }
  var total = (acc0 + acc1).sum()
  while i < n {
    total += a[i] * b[i]
    i += 1
  }
  return total
}

/// sum of (x[i] - mean)^2: a variance's numerator, with two accumulators as simdSum has (one would
/// make every row of a LayerNorm wait on a chain of dependent fused multiply-adds).
@inline(__always)
func simdSquaredDeviations(_ x: UnsafePointer<Float>, _ n: Int, from mean: Float) -> Float {
  var acc0 = SIMD8<Float>(repeating: 0)
  var acc1 = SIMD8<Float>(repeating: 0)
  var i = 0
  while i + 16 <= n {
    let d0 = UnsafeRawPointer(x + i).loadUnaligned(as: SIMD8<Float>.self) - mean
    let d1 = UnsafeRawPointer(x + i + 8).loadUnaligned(as: SIMD8<Float>.self) - mean
    acc0.addProduct(d0, d0)
    acc1.addProduct(d1, d1)
    i += 16
  }
  var total = (acc0 + acc1).sum()
  while i < n {
    let d = x[i] - mean
    total += d * d
    i += 1
  }
  return total
}

/// Sum of squares in Double: the global gradient norm must not lose small tensors next to large ones.
public func sumOfSquares(_ x: UnsafePointer<Float>, _ n: Int) -> Double {
  var total = 0.0
  var i = 0
  while i < n {
    let chunk = min(4096, n - i)
    total += Double(simdDot(x + i, x + i, chunk))
    i += chunk
  }
  return total
}
