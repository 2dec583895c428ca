// Register-tiled matrix products for attention's per-(batch, head) matrices. With head sizes of
// 32-64 and query blocks of 64 rows, each product is a few hundred kFLOP, and cblas_sgemm's packing
// and call cost took most of its time (tiny, 1 thread: 19 µs per head's forward, of which the
// arithmetic at the BLAS peak is 6). Here a tile of 6 rows × 16 columns of the result stays in
// twelve SIMD8 registers while the inner dimension streams past. Operands are read where they lie
// (strided), so nothing is packed.

/// The part of each tile of result rows r0..<r1 that a causal mask leaves (offset: the query block's
/// first row, so that row r of the block is query first + r).
enum CausalTrim {
  case none
  /// Only columns 0..<(r1 + offset): scores, where key j counts for query i only when j <= i.
  case columnsBelow(Int)
  /// Only depth 0..<(r1 + offset): weights × values, where a(r, k) = 0 above the diagonal.
  case depthBelow(Int)
  /// Only depth from (r0 + offset) on: transposed weights, where a(r, k) = 0 for k + first < r.
  case depthFrom(Int)
}

/// c[r, 0..<n] = alpha * Σ_k a(r, k) b[k, 0..<n]  (+ c[r, 0..<n] when accumulating), r in 0..<m,
/// k in 0..<depth, where a(r, k) = a[r * rowStride + k * depthStride] (so a may be a transpose),
/// b's rows are contiguous at stride ldb and c's at stride ldc. Columns that `trim` drops keep their
/// old contents; columns past the trim but inside the last 8-wide chunk may be written.
func tiledMatmul(
  _ c: UnsafeMutablePointer<Float>, ldc: Int,
  _ a: UnsafePointer<Float>, rowStride: Int, depthStride: Int,
  _ b: UnsafePointer<Float>, ldb: Int,
  m: Int, n: Int, depth: Int, alpha: Float, accumulate: Bool, trim: CausalTrim = .none
) {
  var r0 = 0
  while r0 < m {
    let r1 = min(r0 + tileRows, m)
    var (columnEnd, depthBegin, depthEnd) = (n, 0, depth)
    switch trim {
    case .none: break
    case .columnsBelow(let offset): columnEnd = min(n, r1 + offset)
    case .depthBelow(let offset): depthEnd = min(depth, r1 + offset)
    case .depthFrom(let offset): depthBegin = min(depth, max(0, r0 + offset))
    }
    let rows = TileRows(a, rowStride: rowStride, first: r0, end: r1)
    let out = c + r0 * ldc
    let depthRange = depthBegin..<max(depthBegin, depthEnd)
    // Whole 8-wide chunks up to the trim, so that a trim at 12 columns takes one 16-wide tile.
    let chunkEnd = min(n, (columnEnd + 7) & ~7)
    var j = 0
    while j + 16 <= chunkEnd {
      tile16(out + j, ldc, rows, depthStride, b + j, ldb, depthRange, alpha, accumulate)
      j += 16
    }
    while j < columnEnd {
      tile8(
        out + j, ldc, rows, depthStride, b + j, ldb, depthRange, alpha, accumulate,
        width: min(8, n - j))
      j += 8
    }
    r0 = r1
  }
}

/// Rows of a result tile. Six rows × 16 columns use twelve of the sixteen ymm registers for
/// accumulators: per step of the inner dimension, 12 fused multiply-adds against 2 loads and 6
/// broadcasts. (Four rows reached 78 GFLOP/s on 96×32×64 products here; six reach 100.)
let tileRows = 6

/// The rows of a for one tile; a tile past the last row repeats that row (computed, never stored).
struct TileRows {
  let r0, r1, r2, r3, r4, r5: UnsafePointer<Float>
  let count: Int

  init(_ a: UnsafePointer<Float>, rowStride: Int, first: Int, end: Int) {
    func row(_ i: Int) -> UnsafePointer<Float> { a + min(first + i, end - 1) * rowStride }
    (r0, r1, r2, r3, r4, r5) = (row(0), row(1), row(2), row(3), row(4), row(5))
    count = end - first
  }
}

@inline(__always)
private func tile16(
  _ c: UnsafeMutablePointer<Float>, _ ldc: Int, _ a: TileRows, _ depthStride: Int,
  _ b: UnsafePointer<Float>, _ ldb: Int, _ depth: Range<Int>, _ alpha: Float, _ accumulate: Bool
) {
  var (c00, c01, c10, c11, c20, c21) = (Float8(), Float8(), Float8(), Float8(), Float8(), Float8())
  var (c30, c31, c40, c41, c50, c51) = (Float8(), Float8(), Float8(), Float8(), Float8(), Float8())
  for k in depth {
    let bk = UnsafeRawPointer(b + k * ldb)
    let b0 = bk.loadUnaligned(as: Float8.self)
    let b1 = bk.loadUnaligned(fromByteOffset: 32, as: Float8.self)
    let ak = k * depthStride
    var x = Float8(repeating: a.r0[ak])
    c00.addProduct(x, b0)
    c01.addProduct(x, b1)
    x = Float8(repeating: a.r1[ak])
    c10.addProduct(x, b0)
    c11.addProduct(x, b1)
    x = Float8(repeating: a.r2[ak])
    c20.addProduct(x, b0)
    c21.addProduct(x, b1)
    x = Float8(repeating: a.r3[ak])
    c30.addProduct(x, b0)
    c31.addProduct(x, b1)
    x = Float8(repeating: a.r4[ak])
    c40.addProduct(x, b0)
    c41.addProduct(x, b1)
    x = Float8(repeating: a.r5[ak])
    c50.addProduct(x, b0)
    c51.addProduct(x, b1)
  }
  storeRow(c, c00, c01, alpha, accumulate)
  if a.count > 1 { storeRow(c + ldc, c10, c11, alpha, accumulate) }
  if a.count > 2 { storeRow(c + 2 * ldc, c20, c21, alpha, accumulate) }
  if a.count > 3 { storeRow(c + 3 * ldc, c30, c31, alpha, accumulate) }
  if a.count > 4 { storeRow(c + 4 * ldc, c40, c41, alpha, accumulate) }
  if a.count > 5 { storeRow(c + 5 * ldc, c50, c51, alpha, accumulate) }
}

@inline(__always)
private func storeRow(
  _ c: UnsafeMutablePointer<Float>, _ low: Float8, _ high: Float8, _ alpha: Float, _ accumulate: Bool
) {
  let raw = UnsafeMutableRawPointer(c)
  if accumulate {
    raw.storeBytes(of: UnsafeRawPointer(c).loadUnaligned(as: Float8.self).addingProduct(low, alpha), as: Float8.self)
    raw.storeBytes(
      of: UnsafeRawPointer(c + 8).loadUnaligned(as: Float8.self).addingProduct(high, alpha),
      toByteOffset: 32, as: Float8.self)
  } else {
    raw.storeBytes(of: low * alpha, as: Float8.self)
    raw.storeBytes(of: high * alpha, toByteOffset: 32, as: Float8.self)
  }
}

/// One 8-wide column chunk, of which the first `width` columns are read and written.
@inline(__always)
private func tile8(
  _ c: UnsafeMutablePointer<Float>, _ ldc: Int, _ a: TileRows, _ depthStride: Int,
  _ b: UnsafePointer<Float>, _ ldb: Int, _ depth: Range<Int>, _ alpha: Float, _ accumulate: Bool,
  width: Int
) {
  var (c0, c1, c2, c3, c4, c5) = (Float8(), Float8(), Float8(), Float8(), Float8(), Float8())
  for k in depth {
    let bk = load8(b + k * ldb, width)
    let ak = k * depthStride
    c0.addProduct(Float8(repeating: a.r0[ak]), bk)
    c1.addProduct(Float8(repeating: a.r1[ak]), bk)
    c2.addProduct(Float8(repeating: a.r2[ak]), bk)
    c3.addProduct(Float8(repeating: a.r3[ak]), bk)
    c4.addProduct(Float8(repeating: a.r4[ak]), bk)
    c5.addProduct(Float8(repeating: a.r5[ak]), bk)
  }
  for r in 0..<a.count {
    let value: Float8
    switch r {
    case 0: value = c0
    case 1: value = c1
    case 2: value = c2
    case 3: value = c3
    case 4: value = c4
    default: value = c5
    }
    let row = c + r * ldc
    store8(accumulate ? load8(row, width).addingProduct(value, alpha) : value * alpha, row, width)
  }
}

/// out[j, i] = x[i, j] for i in 0..<rows, j in 0..<columns; x's rows at stride ldx, out's at ldo.
func transpose(
  _ out: UnsafeMutablePointer<Float>, ldo: Int, _ x: UnsafePointer<Float>, ldx: Int,
  rows: Int, columns: Int
) {
  for i in 0..<rows {
    let xi = x + i * ldx
    for j in 0..<columns { out[j * ldo + i] = xi[j] }
  }
}
