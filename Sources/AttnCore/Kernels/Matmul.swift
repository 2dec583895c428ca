// Linear layer: out = inp @ weight^T + bias, weight in PyTorch's [out, in] layout.
// BT rows (batch x time), C input channels, OC output channels. Every product goes through sgemm.

import CBLAS

// MARK: - Forward

/// out[BT, OC] = inp[BT, C] @ weight[OC, C]^T + bias[OC]   (out is written: =)
func matmulForward(
  _ out: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>,
  _ weight: UnsafePointer<Float>, _ bias: UnsafePointer<Float>?,
  _ BT: Int, _ C: Int, _ OC: Int
) {
  var beta: Float = 0
  if let bias {
    for row in 0..<BT { (out + row * OC).update(from: bias, count: OC) }
    beta = 1
  }
  cblas_sgemm(
    CblasRowMajor, CblasNoTrans, CblasTrans, Int32(BT), Int32(OC), Int32(C),
    1, inp, Int32(C), weight, Int32(C), beta, out, Int32(OC))
}

// MARK: - Backward

/// dinp[BT, C] = dout @ weight (=);  dweight[OC, C] += dout^T @ inp;  dbias[OC] += column sums of dout.
func matmulBackward(
  _ dinp: UnsafeMutablePointer<Float>, _ dweight: UnsafeMutablePointer<Float>,
  _ dbias: UnsafeMutablePointer<Float>?,
  _ dout: UnsafePointer<Float>, _ inp: UnsafePointer<Float>, _ weight: UnsafePointer<Float>,
  _ BT: Int, _ C: Int, _ OC: Int, _ pool: WorkerPool
) {
  cblas_sgemm(
    CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(BT), Int32(C), Int32(OC),
    1, dout, Int32(OC), weight, Int32(C), 0, dinp, Int32(C))
  cblas_sgemm(
    CblasRowMajor, CblasTrans, CblasNoTrans, Int32(OC), Int32(C), Int32(BT),
    1, dout, Int32(OC), inp, Int32(C), 1, dweight, Int32(C))
  if let dbias { pool.parallelFor(OC, granularity: 64, ColumnSums(sums: dbias, rows: dout, N: BT, C: OC)) }
}

/// sums[c] += sum over rows of rows[n, c], threads taking column ranges: each sum adds its rows in
/// order, so the result does not depend on the thread count.
struct ColumnSums: ParallelKernel {
  let sums: UnsafeMutablePointer<Float>
  let rows: UnsafePointer<Float>
  let N, C: Int

  func run(_ columns: Range<Int>, thread: Int) {
    for n in 0..<N {
      let row = rows + n * C
      for c in columns { sums[c] += row[c] }
    }
  }
}
