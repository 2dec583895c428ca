// Linear layer: out = inp @ weight^T + bias, weight in PyTorch's [out, in] layout.
// BT rows (batch x time), C input channels, OC output channels. Given panel scratch, the forward and
// input-gradient products go through packed weight panels (WeightPanels.swift); the weight gradient,
// and every product of a weight too large for panels, through sgemm.

import CBLAS

// The pool's threads share each product by rows of the result, each thread one single-threaded
// sgemm on its rows. Why not OpenBLAS's own threads: they spin for a while after every call, and with
// as many threads as cores they took the cores the pool needed (attention, GELU and AdamW ran no
// faster on 2 threads than on 1; measured). sgemm's rounding depends on the shape it is given, so a
// different thread count changes results in the last bits; the same thread count repeats them
// exactly. (Blocks of a fixed shape at every thread count cost 5-10% here: measured, not kept.) The
// panel products add in the same order at every thread count.

/// Rows are shared in multiples of 16, which the sgemm kernels tile by.
let matmulRowGranularity = 16

// MARK: - Forward

/// out[BT, OC] = inp[BT, C] @ weight[OC, C]^T + bias[OC]   (out is written: =)
/// panels: nil, or scratch of weightPanelFloats(outputs: OC, inputs: C) floats when that is not nil.
func matmulForward(
  _ out: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>,
  _ weight: UnsafePointer<Float>, _ bias: UnsafePointer<Float>?,
  _ BT: Int, _ C: Int, _ OC: Int, _ pool: WorkerPool, panels: UnsafeMutablePointer<Float>?
) {
  let product = StoreRows(c: out, ldc: OC, bias: bias)
  if !panelProduct(product, inp, rows: BT, weight, depthStride: 1, columnStride: C, depth: C, columns: OC, pool, panels: panels) {
    pool.parallelFor(BT, granularity: matmulRowGranularity, MatmulForwardRows(out: out, inp: inp, weight: weight, bias: bias, C: C, OC: OC))
  }
}

/// out[BT, OC] = addend[BT, OC] + (inp @ weight^T + bias), the same bits as matmulForward followed
/// by residualForward: a residual connection's sum, which the panel products store as they go, with
/// no pass of its own. out may not be addend.
func matmulForward(
  _ out: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>,
  _ weight: UnsafePointer<Float>, _ bias: UnsafePointer<Float>, adding addend: UnsafePointer<Float>,
  _ BT: Int, _ C: Int, _ OC: Int, _ pool: WorkerPool, panels: UnsafeMutablePointer<Float>?
) {
  let product = StoreRowsAdding(c: out, ldc: OC, bias: bias, addend: addend)
  if !panelProduct(product, inp, rows: BT, weight, depthStride: 1, columnStride: C, depth: C, columns: OC, pool, panels: panels) {
    matmulForward(out, inp, weight, bias, BT, C, OC, pool, panels: nil)
    residualForward(out, addend, out, BT * OC, pool)
  }
}

private struct MatmulForwardRows: ParallelKernel {
  let out: UnsafeMutablePointer<Float>
  let inp, weight: UnsafePointer<Float>
  let bias: UnsafePointer<Float>?
  let C, OC: Int

  func run(_ rows: Range<Int>, thread: Int) {
    let y = out + rows.lowerBound * OC
    var beta: Float = 0
    if let bias {
      for row in 0..<rows.count { (y + row * OC).update(from: bias, count: OC) }
      beta = 1
    }
    cblas_sgemm(
      CblasRowMajor, CblasNoTrans, CblasTrans, Int32(rows.count), Int32(OC), Int32(C),
      1, inp + rows.lowerBound * C, Int32(C), weight, Int32(C), beta, y, Int32(OC))
  }
}

// MARK: - Backward

/// dinp[BT, C] = dout @ weight (=);  dweight[OC, C] += dout^T @ inp;  dbias[OC] += column sums of dout
/// (= for both when `accumulate` is false: the first micro-step needs no zeroed gradients).
/// panels: as for matmulForward. geluSlope: when inp is gelu(h) and geluSlope = gelu'(h) as
/// geluForward kept it (the MLP's projection), dinp receives the gradient with respect to h instead,
/// multiplied by the slope as each tile of the product is finished.
func matmulBackward(
  _ dinp: UnsafeMutablePointer<Float>, _ dweight: UnsafeMutablePointer<Float>,
  _ dbias: UnsafeMutablePointer<Float>?,
  _ dout: UnsafePointer<Float>, _ inp: UnsafePointer<Float>, _ weight: UnsafePointer<Float>,
  _ BT: Int, _ C: Int, _ OC: Int, _ pool: WorkerPool, panels: UnsafeMutablePointer<Float>?,
  geluSlope: UnsafePointer<Float>? = nil, accumulate: Bool = true
) {
  func inputGradient<Epilogue: PanelEpilogue>(_ epilogue: Epilogue) -> Bool {
    panelProduct(epilogue, dout, rows: BT, weight, depthStride: C, columnStride: 1, depth: OC, columns: C, pool, panels: panels)
  }
  let throughPanels =
    if let geluSlope { inputGradient(GELUGradientStore(dinp: dinp, ld: C, slope: geluSlope)) }
    else { inputGradient(StoreRows(c: dinp, ldc: C, bias: nil)) }
  if !throughPanels {
    pool.parallelFor(BT, granularity: matmulRowGranularity, MatmulInputGradientRows(dinp: dinp, dout: dout, weight: weight, C: C, OC: OC))
    if let geluSlope { geluBackward(dinp, slope: geluSlope, dinp, BT * C, pool) }
  }
  pool.parallelFor(OC, granularity: matmulRowGranularity, MatmulWeightGradientRows(dweight: dweight, dout: dout, inp: inp, BT: BT, C: C, OC: OC, accumulate: accumulate))
  if let dbias {
    pool.parallelFor(OC, granularity: 64, ColumnSums(sums: dbias, rows: dout, N: BT, C: OC, accumulate: accumulate))
  }
}

/// dinp[rows] = dout[rows] @ weight
private struct MatmulInputGradientRows: ParallelKernel {
  let dinp: UnsafeMutablePointer<Float>
  let dout, weight: UnsafePointer<Float>
  let C, OC: Int

  func run(_ rows: Range<Int>, thread: Int) {
    cblas_sgemm(
      CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(rows.count), Int32(C), Int32(OC),
      1, dout + rows.lowerBound * OC, Int32(OC), weight, Int32(C), 0, dinp + rows.lowerBound * C, Int32(C))
  }
}

/// dweight[outputs] += dout[:, outputs]^T @ inp  (= without accumulate)
private struct MatmulWeightGradientRows: ParallelKernel {
  let dweight: UnsafeMutablePointer<Float>
  let dout, inp: UnsafePointer<Float>
  let BT, C, OC: Int
  let accumulate: Bool

  func run(_ outputs: Range<Int>, thread: Int) {
    cblas_sgemm(
      CblasRowMajor, CblasTrans, CblasNoTrans, Int32(outputs.count), Int32(C), Int32(BT),
      1, dout + outputs.lowerBound, Int32(OC), inp, Int32(C), accumulate ? 1 : 0, dweight + outputs.lowerBound * C,
      Int32(C))
  }
}

/// sums[c] += sum over rows of rows[n, c] (= without accumulate), threads taking column ranges: each
/// sum adds its rows in order, so the result does not depend on the thread count.
struct ColumnSums: ParallelKernel {
  let sums: UnsafeMutablePointer<Float>
  let rows: UnsafePointer<Float>
  let N, C: Int
  let accumulate: Bool

  func run(_ columns: Range<Int>, thread: Int) {
    if !accumulate { for c in columns { sums[c] = 0 } }
    for n in 0..<N {
      let row = rows + n * C
      for c in columns { sums[c] += row[c] }
    }
  }
}
