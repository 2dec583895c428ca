// Linear layers' forward and input-gradient products with the weight packed into panels of 16
// columns, each panel [depth, 16] contiguous, and the register tiles of TiledMatmul.swift running
// over them. Against cblas_sgemm at these models' shapes (1 thread, operands warm, a standalone
// microbenchmark): 97-100 GFLOP/s against 71-93 for tiny's and small's products (K = 64 or 128,
// where sgemm spends much of its time packing the activations); 98 against 94 at medium's. Reading
// the weight where it lies is slower (49-82): a row stride of 2 KiB maps a panel onto two L1 sets.
// The weight gradient stays with sgemm, which was faster there (86-97 against 64-85 packed; and
// packing both operands per block of 256 rows reached only 40 in a later try, a quarter of it the
// packing itself).
// Packing costs one pass over the weight, small beside a product over hundreds of rows. Each result
// adds its products in the order of k alone, so unlike sgemm it does not depend on the thread count.

import CPrefetch

/// Weights with more elements than this go through sgemm: the panels would take as much memory as
/// the weight itself (gpt2's tied head is 38M floats), and at those sizes sgemm is as fast.
let panelWeightLimit = 1 << 20

/// Floats of panel scratch that a linear layer with weight [OC, C] needs for forward and backward,
/// or nil when it goes through sgemm.
public func weightPanelFloats(outputs OC: Int, inputs C: Int) -> Int? {
  guard OC * C <= panelWeightLimit else { return nil }
  return max(roundedToPanels(OC) * C, roundedToPanels(C) * OC)
}

private func roundedToPanels(_ n: Int) -> Int { (n + 15) / 16 * 16 }

/// panels[n / 16][k, n % 16] = b(k, n) = b[k * depthStride + n * columnStride], for k in 0..<depth and
/// n in 0..<columns. Lanes past the last column are left as they are: nothing reads them.
/// Packing reads the whole weight from memory at every call, whatever the batch, so its order is
/// the one that reads b from start to end: with contiguous rows (the input gradient's packing) each
/// row is spread over the panels (medium: 7.3-7.9 against 13.6-14.5 ms a step when each panel
/// gathered its 16 floats from every row).
func packPanels(
  _ panels: UnsafeMutablePointer<Float>, _ b: UnsafePointer<Float>, depthStride: Int, columnStride: Int,
  depth: Int, columns: Int
) {
  if columnStride == 1 {
    for k in 0..<depth {
      let row = b + k * depthStride
      var panel = panels + k * 16
      for j in stride(from: 0, to: columns, by: 16) {
        let width = min(16, columns - j)
        store8(load8(row + j, min(8, width)), panel, min(8, width))
        if width > 8 { store8(load8(row + j + 8, width - 8), panel + 8, width - 8) }
        panel += depth * 16
      }
    }
    return
  }
  // Contiguous columns (the forward's packing, a transpose of the weight): 8 columns × 8 depths
  // at a time through registers, whole vectors in and out (medium: 5.7-6.7 against 7.1-9.1 ms a
  // step for all the forward's weights, packed one float at a time, in a standalone loop).
  var panel = panels
  for j in stride(from: 0, to: columns, by: 16) {
    let width = min(16, columns - j)
    var k = 0
    if width == 16 && depthStride == 1 {
      while k + 8 <= depth {
        for half in 0..<2 {
          let t = transposed8x8(b + (j + 8 * half) * columnStride + k, rowStride: columnStride)
          let out = panel + k * 16 + 8 * half
          store8(t.0, out, 8)
          store8(t.1, out + 16, 8)
          store8(t.2, out + 32, 8)
          store8(t.3, out + 48, 8)
          store8(t.4, out + 64, 8)
          store8(t.5, out + 80, 8)
          store8(t.6, out + 96, 8)
          store8(t.7, out + 112, 8)
        }
        k += 8
      }
    }
    for jj in 0..<width {
      let column = b + (j + jj) * columnStride
      for kk in k..<depth { panel[kk * 16 + jj] = column[kk * depthStride] }
    }
    panel += depth * 16
  }
}

/// The 8×8 block at x (rows at rowStride) transposed: result m holds column m. The usual AVX
/// sequence (unpack, shuffle, swap 128-bit halves), which LLVM selects from these lane patterns.
@inline(__always)
private func transposed8x8(
  _ x: UnsafePointer<Float>, rowStride: Int
) -> (Float8, Float8, Float8, Float8, Float8, Float8, Float8, Float8) {
  func row(_ i: Int) -> Float8 { load8(x + i * rowStride, 8) }
  func low(_ a: Float8, _ b: Float8) -> Float8 { Float8(a[0], b[0], a[1], b[1], a[4], b[4], a[5], b[5]) }
  func high(_ a: Float8, _ b: Float8) -> Float8 { Float8(a[2], b[2], a[3], b[3], a[6], b[6], a[7], b[7]) }
  func evenPairs(_ a: Float8, _ b: Float8) -> Float8 { Float8(a[0], a[1], b[0], b[1], a[4], a[5], b[4], b[5]) }
  func oddPairs(_ a: Float8, _ b: Float8) -> Float8 { Float8(a[2], a[3], b[2], b[3], a[6], a[7], b[6], b[7]) }
  func lowHalves(_ a: Float8, _ b: Float8) -> Float8 { Float8(lowHalf: a.lowHalf, highHalf: b.lowHalf) }
  func highHalves(_ a: Float8, _ b: Float8) -> Float8 { Float8(lowHalf: a.highHalf, highHalf: b.highHalf) }
  let (r0, r1, r2, r3, r4, r5, r6, r7) = (row(0), row(1), row(2), row(3), row(4), row(5), row(6), row(7))
  let (t0, t1, t2, t3) = (low(r0, r1), high(r0, r1), low(r2, r3), high(r2, r3))
  let (t4, t5, t6, t7) = (low(r4, r5), high(r4, r5), low(r6, r7), high(r6, r7))
  let (u0, u1, u2, u3) = (evenPairs(t0, t2), oddPairs(t0, t2), evenPairs(t1, t3), oddPairs(t1, t3))
  let (u4, u5, u6, u7) = (evenPairs(t4, t6), oddPairs(t4, t6), evenPairs(t5, t7), oddPairs(t5, t7))
  return (
    lowHalves(u0, u4), lowHalves(u1, u5), lowHalves(u2, u6), lowHalves(u3, u7),
    highHalves(u0, u4), highHalves(u1, u5), highHalves(u2, u6), highHalves(u3, u7)
  )
}

/// Where a panel product's finished pieces go, up to 8 columns of one result row at a time, while
/// they are still in registers. A plain store adds the bias; the input gradient of the MLP's
/// projection multiplies by GELU's slope here (GELU.swift), which spares GELU's backward its own
/// pass over memory (tiny, 1 thread: +2%). GELU's forward as an epilogue of the fc product gained
/// nothing (measured): its erf and exp cost the same wherever they run.
protocol PanelEpilogue {
  /// Requests the lines that storing columns column..<column + 16 of `row` will touch.
  func prefetch(row: Int, column: Int)
  func store(_ sums: Float8, row: Int, column: Int, width: Int)
}

/// c[row, column...] = sums (+ bias[column...])
struct StoreRows: PanelEpilogue {
  let c: UnsafeMutablePointer<Float>
  let ldc: Int
  let bias: UnsafePointer<Float>?

  @inline(__always)
  func prefetch(row: Int, column: Int) { prefetch_for_writing(c + row * ldc + column) }

  @inline(__always)
  func store(_ sums: Float8, row: Int, column: Int, width: Int) {
    let value = bias.map { sums + load8($0 + column, width) } ?? sums
    store8(value, c + row * ldc + column, width)
  }
}

/// c[row, column...] = addend[row, column...] + (sums + bias[column...]), addend at stride ldc.
/// (An epilogue of its own rather than an optional addend in StoreRows: checking that optional in
/// every store made tiny's whole step 1% slower.)
struct StoreRowsAdding: PanelEpilogue {
  let c: UnsafeMutablePointer<Float>
  let ldc: Int
  let bias: UnsafePointer<Float>
  let addend: UnsafePointer<Float>

  @inline(__always)
  func prefetch(row: Int, column: Int) {
    prefetch_for_writing(c + row * ldc + column)
    prefetch_for_reading(addend + row * ldc + column)
  }

  @inline(__always)
  func store(_ sums: Float8, row: Int, column: Int, width: Int) {
    let offset = row * ldc + column
    store8(load8(addend + offset, width) + (sums + load8(bias + column, width)), c + offset, width)
  }
}

/// epilogue(Σ_k a(r, k) b(k, 0..<n)) for r in rows, with b packed by packPanels and
/// a(r, k) = a[r * rowStride + k]. Hands the epilogue no column past n.
/// While a tile runs, the lines its successor will write are requested, one panel's columns at a
/// time: the result buffers were last touched a whole step ago, and each first store waited on
/// memory (tiny, 1 thread: the forward products of K = 64 ran at 74 GFLOP/s against 83 for K = 256,
/// whose stores are four times rarer). Prefetching the next tile's rows of `a` as well was slower:
/// LayerNorm or GELU has just written them.
@inline(__always)
func panelMatmul<Epilogue: PanelEpilogue>(
  _ epilogue: Epilogue, _ a: UnsafePointer<Float>, rowStride: Int, _ panels: UnsafePointer<Float>,
  rows: Range<Int>, n: Int, depth: Int
) {
  var r0 = rows.lowerBound
  while r0 < rows.upperBound {
    let r1 = min(r0 + tileRows, rows.upperBound)
    let tile = TileRows(a, rowStride: rowStride, first: r0, end: r1)
    let nextTileRows = r1..<min(r1 + tileRows, rows.upperBound)
    var j = 0
    var panel = panels
    while j + 16 <= n {
      for r in nextTileRows { epilogue.prefetch(row: r, column: j) }
      let sums = tileSums16(tile, 1, panel, 16, 0..<depth)
      for r in 0..<tile.count {
        let (low, high) = sums.row(r)
        epilogue.store(low, row: r0 + r, column: j, width: 8)
        epilogue.store(high, row: r0 + r, column: j + 8, width: 8)
      }
      j += 16
      panel += depth * 16
    }
    while j < n {
      let width = min(8, n - j)
      let sums = tileSums8(tile, 1, panel + j % 16, 16, 0..<depth, width: width)
      for r in 0..<tile.count { epilogue.store(sums.row(r), row: r0 + r, column: j, width: width) }
      j += 8
    }
    r0 = r1
  }
}

/// Runs epilogue(a[rows, depth] @ b) through panels, b(k, n) = b[k * depthStride + n * columnStride]
/// for n in 0..<columns, shared among the pool's threads by rows. Returns false, having done
/// nothing, when there is no scratch or b is too large for panels (the caller then uses sgemm).
func panelProduct<Epilogue: PanelEpilogue>(
  _ epilogue: Epilogue, _ a: UnsafePointer<Float>, rows: Int,
  _ b: UnsafePointer<Float>, depthStride: Int, columnStride: Int, depth: Int, columns: Int,
  _ pool: WorkerPool, panels: UnsafeMutablePointer<Float>?
) -> Bool {
  guard let panels, weightPanelFloats(outputs: columns, inputs: depth) != nil else { return false }
  packPanels(panels, b, depthStride: depthStride, columnStride: columnStride, depth: depth, columns: columns)
  pool.parallelFor(rows, granularity: matmulRowGranularity, PanelRows(epilogue: epilogue, a: a, panels: UnsafePointer(panels), n: columns, depth: depth))
  return true
}

private struct PanelRows<Epilogue: PanelEpilogue>: ParallelKernel {
  let epilogue: Epilogue
  let a, panels: UnsafePointer<Float>
  let n, depth: Int

  func run(_ rows: Range<Int>, thread: Int) {
    panelMatmul(epilogue, a, rowStride: depth, panels, rows: rows, n: n, depth: depth)
  }
}
