// exp over SIMD8<Float>, and the chunked loads and stores the kernels share: libm's expf and erff
// are scalar and dominated GELU and softmax (GELU was 27% of a shakespeare-char step with erff;
// GELU.swift now gets erf from this exp). Accuracy is tested against libm in VectorMathTests: within
// 3e-7 relative, below float32 rounding of the surrounding arithmetic.

typealias Float8 = SIMD8<Float>

// Two code-generation traps, both measured (tiny's softmax: 11.2 µs per head before, 4.1 after):
// - @inline(__always) left vexp (and an erf, since replaced) as a call in larger callers (the ymm
//   argument split into two xmm halves, vzeroupper, every constant reloaded), so vexp is
//   @_transparent: always inlined.
// - A SIMD comparison against a scalar that is not a literal (v .>= Int32(n)) compiles to a per-lane
//   loop through the stack; comparing against SIMD8(repeating:) is one instruction.

/// e^x for x <= 88.72, above which float overflows (every caller passes x <= 0: a difference from
/// a maximum, or -x^2/2). x = n ln2 + r with |r| <= ln2/2, e^r by a degree-6 polynomial (Cephes
/// expf), 2^n via the exponent bits. Inputs below -87.33 give 0; NaN propagates through the
/// arithmetic. (Clamping and testing only the lower end, and reducing by fused multiply-adds, made
/// it 0.49 ns a value on 1 thread against 0.68 with both ends and the NaN case handled apart.)
@_transparent
func vexp(_ x: Float8) -> Float8 {
  let under = x .< Float8(repeating: -87.33)
  let clamped = x.replacing(with: -87.33, where: under)
  // Adding 1.5 * 2^23 rounds to an integer in the low mantissa bits: n as a float and as an Int32
  // without the per-lane calls that .rounded() and Int32(_:) compile to.
  let shifted = Float8(repeating: 12_582_912).addingProduct(clamped, Float8(repeating: 1.442_695_04))
  let n = shifted - 12_582_912
  let exponent = unsafeBitCast(shifted, to: SIMD8<Int32>.self) &- 0x4B40_0000
  // ln2 split in two so n * ln2 is subtracted exactly (Cody-Waite).
  var r = clamped.addingProduct(n, Float8(repeating: -0.693_359_375))
  r = r.addingProduct(n, Float8(repeating: 2.121_944_4e-4))
  var p = Float8(repeating: 1.987_569_15e-4)
  p = Float8(repeating: 1.398_199_95e-3).addingProduct(p, r)
  p = Float8(repeating: 8.333_451_9e-3).addingProduct(p, r)
  p = Float8(repeating: 4.166_579_6e-2).addingProduct(p, r)
  p = Float8(repeating: 1.666_666_55e-1).addingProduct(p, r)
  p = Float8(repeating: 5.000_000_1e-1).addingProduct(p, r)
  let er = (r + 1).addingProduct(p, r * r)
  return (er * unsafeBitCast((exponent &+ 127) &<< 23, to: Float8.self)).replacing(with: 0, where: under)
}

/// Applies `body` to n floats, eight at a time, with a zero-padded tail (no reads past n).
@inline(__always)
func forEachChunk(_ n: Int, _ body: (_ offset: Int, _ count: Int) -> Void) {
  forEachChunk(in: 0..<n, body)
}

/// The same over a range of indices: body(offset, count) with offsets from range.lowerBound.
@inline(__always)
func forEachChunk(in range: Range<Int>, _ body: (_ offset: Int, _ count: Int) -> Void) {
  var i = range.lowerBound
  while i + 8 <= range.upperBound {
    body(i, 8)
    i += 8
  }
  if i < range.upperBound { body(i, range.upperBound - i) }
}

@inline(__always)
func load8(_ p: UnsafePointer<Float>, _ count: Int) -> Float8 {
  if count == 8 { return UnsafeRawPointer(p).loadUnaligned(as: Float8.self) }
  var v = Float8(repeating: 0)
  for k in 0..<count { v[k] = p[k] }
  return v
}

@inline(__always)
func store8(_ v: Float8, _ p: UnsafeMutablePointer<Float>, _ count: Int) {
  if count == 8 {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: Float8.self)
    return
  }
  for k in 0..<count { p[k] = v[k] }
}

/// The first `count` lanes of v (all of them when count >= 8), zeros after: what a reduction over a
/// partial tail chunk must add.
@inline(__always)
func keepFirst(_ v: Float8, _ count: Int) -> Float8 {
  count >= 8 ? v : v.replacing(with: 0, where: laneIndices .>= SIMD8<Int32>(repeating: Int32(count)))
}

@_transparent
var laneIndices: SIMD8<Int32> { SIMD8<Int32>(0, 1, 2, 3, 4, 5, 6, 7) }
