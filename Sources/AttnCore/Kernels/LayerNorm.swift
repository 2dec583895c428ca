// LayerNorm over the last axis of [N, C] rows (N = B*T), biased variance, eps 1e-5 as in PyTorch.
// The forward keeps mean and 1/std per row for the backward.

let layerNormEpsilon: Float = 1e-5

// MARK: - Forward

/// out[N, C] = (inp - mean) * rstd * weight + bias; mean[N], rstd[N] are written.
func layerNormForward(
  _ out: UnsafeMutablePointer<Float>, _ mean: UnsafeMutablePointer<Float>,
  _ rstd: UnsafeMutablePointer<Float>,
  _ inp: UnsafePointer<Float>, _ weight: UnsafePointer<Float>, _ bias: UnsafePointer<Float>,
  _ N: Int, _ C: Int, _ pool: WorkerPool
) {
  pool.parallelFor(N, LayerNormForward(out: out, mean: mean, rstd: rstd, inp: inp, weight: weight, bias: bias, C: C))
}

private struct LayerNormForward: ParallelKernel {
  let out, mean, rstd: UnsafeMutablePointer<Float>
  let inp, weight, bias: UnsafePointer<Float>
  let C: Int

  func run(_ rows: Range<Int>, thread: Int) {
    for row in rows {
      let x = inp + row * C
      let m = simdSum(x, C) / Float(C)
      let s = 1 / (simdSquaredDeviations(x, C, from: m) / Float(C) + layerNormEpsilon).squareRoot()
      let y = out + row * C
      for i in 0..<C { y[i] = (x[i] - m) * s * weight[i] + bias[i] }
      mean[row] = m
      rstd[row] = s
    }
  }
}

// MARK: - Backward

/// dinp += ...;  dweight += ...;  dbias += ...  (dweight and dbias are written, =, without
/// accumulate). Rows are shared among threads for dinp, columns for dweight and dbias, so every sum
/// keeps its serial order.
func layerNormBackward(
  _ dinp: UnsafeMutablePointer<Float>, _ dweight: UnsafeMutablePointer<Float>,
  _ dbias: UnsafeMutablePointer<Float>,
  _ dout: UnsafePointer<Float>, _ inp: UnsafePointer<Float>, _ weight: UnsafePointer<Float>,
  _ mean: UnsafePointer<Float>, _ rstd: UnsafePointer<Float>,
  _ N: Int, _ C: Int, _ pool: WorkerPool, accumulate: Bool = true
) {
  if !accumulate {
    dweight.update(repeating: 0, count: C)
    dbias.update(repeating: 0, count: C)
  }
  // One thread takes the rows in order, so the parameter sums can ride along in the same pass (the
  // same bits as the column pass: each sum still adds its rows in order). With more threads, rows
  // go to threads and a second pass over the columns keeps that order.
  let fused = pool.threads == 1
  pool.parallelFor(
    N,
    LayerNormInputGradient(
      dinp: dinp, dweight: fused ? dweight : nil, dbias: fused ? dbias : nil, dout: dout, inp: inp,
      weight: weight, mean: mean, rstd: rstd, C: C))
  if !fused {
    pool.parallelFor(C, granularity: 64, LayerNormParameterGradients(dweight: dweight, dbias: dbias, dout: dout, inp: inp, mean: mean, rstd: rstd, N: N, C: C))
  }
}

private struct LayerNormInputGradient: ParallelKernel {
  let dinp: UnsafeMutablePointer<Float>
  /// Also summed here when given (rows must then come in order, on one thread).
  let dweight, dbias: UnsafeMutablePointer<Float>?
  let dout, inp, weight, mean, rstd: UnsafePointer<Float>
  let C: Int

  func run(_ rows: Range<Int>, thread: Int) {
    for row in rows {
      let x = inp + row * C
      let dy = dout + row * C
      let dx = dinp + row * C
      let m = mean[row]
      let s = rstd[row]
      // d(loss)/d(norm) = dy * weight; the two means are the projections the normalisation removes.
      var dnormSums = Float8(repeating: 0)
      var dnormNormSums = Float8(repeating: 0)
      forEachChunk(C) { i, count in
        let norm = (load8(x + i, count) - m) * s
        let dnorm = keepFirst(load8(weight + i, count) * load8(dy + i, count), count)
        dnormSums += dnorm
        dnormNormSums.addProduct(dnorm, norm)
      }
      let dnormMean = dnormSums.sum() / Float(C)
      let dnormNormMean = dnormNormSums.sum() / Float(C)
      for i in 0..<C {
        let norm = (x[i] - m) * s
        dx[i] += (weight[i] * dy[i] - dnormMean - norm * dnormNormMean) * s
      }
      if let dweight, let dbias {
        for i in 0..<C {
          dbias[i] += dy[i]
          dweight[i] += (x[i] - m) * s * dy[i]
        }
      }
    }
  }
}

private struct LayerNormParameterGradients: ParallelKernel {
  let dweight, dbias: UnsafeMutablePointer<Float>
  let dout, inp, mean, rstd: UnsafePointer<Float>
  let N, C: Int

  func run(_ columns: Range<Int>, thread: Int) {
    for row in 0..<N {
      let x = inp + row * C
      let dy = dout + row * C
      let (m, s) = (mean[row], rstd[row])
      for i in columns {
        dbias[i] += dy[i]
        dweight[i] += (x[i] - m) * s * dy[i]
      }
    }
  }
}
