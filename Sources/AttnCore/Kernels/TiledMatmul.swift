// Register-tiled matrix products: attention's per-(batch, head) matrices here, and the linear
// layers' products over packed weights in WeightPanels.swift. For attention, with head sizes of
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
      let sums = tileSums16(rows, depthStride, b + j, ldb, depthRange)
      for r in 0..<rows.count {
        let (low, high) = sums.row(r)
        let row = out + r * ldc + j
        storeScaled(low, row, 8, alpha, accumulate)
        storeScaled(high, row + 8, 8, alpha, accumulate)
      }
      j += 16
    }
    while j < columnEnd {
      let width = min(8, n - j)
      let sums = tileSums8(rows, depthStride, b + j, ldb, depthRange, width: width)
      for r in 0..<rows.count { storeScaled(sums.row(r), out + r * ldc + j, width, alpha, accumulate) }
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
private func storeScaled(
  _ sums: Float8, _ c: UnsafeMutablePointer<Float>, _ width: Int, _ alpha: Float, _ accumulate: Bool
) {
  store8(accumulate ? load8(c, width).addingProduct(sums, alpha) : sums * alpha, c, width)
}

/// The sums of a tile of 6 rows × 16 columns: row r's first eight columns and its last eight.
struct TileSums16 {
  var c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51: Float8

  @inline(__always)
  func row(_ r: Int) -> (Float8, Float8) {
    switch r {
    case 0: (c00, c01)
    case 1: (c10, c11)
    case 2: (c20, c21)
    case 3: (c30, c31)
    case 4: (c40, c41)
    default: (c50, c51)
    }
  }
}

/// Σ_k a(r, k) b[k, 0..<16] for the tile's rows, k in depth (b's rows at stride ldb).
@inline(__always)
func tileSums16(
  _ a: TileRows, _ depthStride: Int, _ b: UnsafePointer<Float>, _ ldb: Int, _ depth: Range<Int>
) -> TileSums16 {
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
  return TileSums16(
    c00: c00, c01: c01, c10: c10, c11: c11, c20: c20, c21: c21,
    c30: c30, c31: c31, c40: c40, c41: c41, c50: c50, c51: c51)
}

/// The sums of a tile of 6 rows × one 8-wide column chunk.
struct TileSums8 {
  var c0, c1, c2, c3, c4, c5: Float8

  @inline(__always)
  func row(_ r: Int) -> Float8 {
    switch r {
    case 0: c0
    case 1: c1
    case 2: c2
    case 3: c3
    case 4: c4
    default: c5
    }
  }
}

/// Σ_k a(r, k) b[k, 0..<width] for the tile's rows (lanes past width are 0; b is read no further).
@inline(__always)
func tileSums8(
  _ a: TileRows, _ depthStride: Int, _ b: UnsafePointer<Float>, _ ldb: Int, _ depth: Range<Int>,
  width: Int
) -> TileSums8 {
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
  return TileSums8(c0: c0, c1: c1, c2: c2, c3: c3, c4: c4, c5: c5)
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
