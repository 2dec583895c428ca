// LayerNorm over the last axis of [N, C] rows (N = B*T), biased variance, eps 1e-5 as in PyTorch.
// The forward keeps mean and 1/std per row for the backward.

let layerNormEpsilon: Float = 1e-5

// MARK: - Forward

/// out[N, C] = (inp - mean) * rstd * weight + bias; mean[N], rstd[N] are written.
func layerNormForward(
  _ out: UnsafeMutablePointer<Float>, _ mean: UnsafeMutablePointer<Float>,
  _ rstd: UnsafeMutablePointer<Float>,
  _ inp: UnsafePointer<Float>, _ weight: UnsafePointer<Float>, _ bias: UnsafePointer<Float>,
  _ N: Int, _ C: Int
) {
  for row in 0..<N {
    let x = inp + row * C
    let m = simdSum(x, C) / Float(C)
    var variance: Float = 0
    for i in 0..<C {
      let d = x[i] - m
      variance += d * d
    }
    let s = 1 / (variance / Float(C) + layerNormEpsilon).squareRoot()
    let y = out + row * C
    for i in 0..<C { y[i] = (x[i] - m) * s * weight[i] + bias[i] }
    mean[row] = m
    rstd[row] = s
  }
}

// MARK: - Backward

/// dinp += ...;  dweight += ...;  dbias += ...  (all accumulate).
func layerNormBackward(
  _ dinp: UnsafeMutablePointer<Float>, _ dweight: UnsafeMutablePointer<Float>,
  _ dbias: UnsafeMutablePointer<Float>,
  _ dout: UnsafePointer<Float>, _ inp: UnsafePointer<Float>, _ weight: UnsafePointer<Float>,
  _ mean: UnsafePointer<Float>, _ rstd: UnsafePointer<Float>,
  _ N: Int, _ C: Int
) {
  for row in 0..<N {
    let x = inp + row * C
    let dy = dout + row * C
    let dx = dinp + row * C
    let m = mean[row]
    let s = rstd[row]
    // d(loss)/d(norm) = dy * weight; the two means below are the projections the normalisation removes.
    var dnormMean: Float = 0
    var dnormNormMean: Float = 0
    for i in 0..<C {
      let norm = (x[i] - m) * s
      let dnorm = weight[i] * dy[i]
      dnormMean += dnorm
      dnormNormMean += dnorm * norm
    }
    dnormMean /= Float(C)
    dnormNormMean /= Float(C)
    for i in 0..<C {
      let norm = (x[i] - m) * s
      let dnorm = weight[i] * dy[i]
      dbias[i] += dy[i]
      dweight[i] += norm * dy[i]
      dx[i] += (dnorm - dnormMean - norm * dnormNormMean) * s
    }
  }
}
