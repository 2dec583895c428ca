// Causal multi-head self-attention over a fused qkv[B, T, 3C] (q | k | v, head h at columns
// h*HS..<(h+1)*HS of each third). Per (batch, head): scores = q k^T / sqrt(HS) and y = att v are sgemm
// calls on strided views, so q, k and v are never copied out.
// B batch, T time, C channels, NH heads, HS = C / NH.

import CBLAS

#if canImport(Glibc)
  import Glibc
#else
  import Darwin
#endif

// MARK: - Forward

/// out[B, T, C] = concat over heads of dropout(softmax(causal(q k^T / sqrt(HS)))) v   (=)
/// att[B, NH, T, T] = the softmax weights before dropout, zero above the diagonal (kept for backward).
/// scratch[T, T]: room for the dropped-out weights when dropout is on.
func attentionForward(
  _ out: UnsafeMutablePointer<Float>, _ att: UnsafeMutablePointer<Float>,
  _ qkv: UnsafePointer<Float>, _ scratch: UnsafeMutablePointer<Float>,
  _ dropout: DropoutContext, layer: Int,
  _ B: Int, _ T: Int, _ C: Int, _ NH: Int
) {
  let HS = C / NH
  let scale = 1 / Float(HS).squareRoot()
  let rowStride = Int32(3 * C)
  for b in 0..<B {
    let dropKey = dropout.key(sample: b, layer: layer, site: .attentionWeights)
    for h in 0..<NH {
      let q = qkv + b * T * 3 * C + h * HS
      let k = q + C
      let v = q + 2 * C
      let a = att + (b * NH + h) * T * T
      cblas_sgemm(
        CblasRowMajor, CblasNoTrans, CblasTrans, Int32(T), Int32(T), Int32(HS),
        scale, q, rowStride, k, rowStride, 0, a, Int32(T))
      for i in 0..<T { causalSoftmaxRow(a + i * T, validCount: i + 1, T) }
      var weights = UnsafePointer(a)
      if dropout.isActive {
        let p = dropout.probability
        let keep = 1 / (1 - p)
        let base = h * T * T
        for i in 0..<(T * T) { scratch[i] = dropKey.uniform(base + i) >= p ? a[i] * keep : 0 }
        weights = UnsafePointer(scratch)
      }
      cblas_sgemm(
        CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(T), Int32(HS), Int32(T),
        1, weights, Int32(T), v, rowStride, 0, out + b * T * C + h * HS, Int32(C))
    }
  }
}

/// Numerically stable softmax of row[0..<validCount]; entries from validCount on become 0.
@inline(__always)
private func causalSoftmaxRow(_ row: UnsafeMutablePointer<Float>, validCount n: Int, _ T: Int) {
  var maxValue = -Float.infinity
  for j in 0..<n where row[j] > maxValue { maxValue = row[j] }
  var sums = Float8(repeating: 0)
  forEachChunk(n) { j, count in
    let e = vexp(load8(row + j, count) - maxValue)
    sums += keepFirst(e, count)
    store8(e, row + j, count)
  }
  let inverse = 1 / sums.sum()
  for j in 0..<n { row[j] *= inverse }
  for j in n..<T { row[j] = 0 }
}

// MARK: - Backward

/// dqkv[B, T, 3C] = gradient with respect to qkv (=), from dout[B, T, C].
/// scratchWeights, scratchGrad: [T, T] each.
func attentionBackward(
  _ dqkv: UnsafeMutablePointer<Float>, _ dout: UnsafePointer<Float>,
  _ qkv: UnsafePointer<Float>, _ att: UnsafePointer<Float>,
  _ scratchWeights: UnsafeMutablePointer<Float>, _ scratchGrad: UnsafeMutablePointer<Float>,
  _ dropout: DropoutContext, layer: Int,
  _ B: Int, _ T: Int, _ C: Int, _ NH: Int
) {
  let HS = C / NH
  let scale = 1 / Float(HS).squareRoot()
  let rowStride = Int32(3 * C)
  let p = dropout.probability
  let keep = 1 / (1 - p)
  for b in 0..<B {
    let dropKey = dropout.key(sample: b, layer: layer, site: .attentionWeights)
    for h in 0..<NH {
      let q = qkv + b * T * 3 * C + h * HS
      let k = q + C
      let v = q + 2 * C
      let dq = dqkv + b * T * 3 * C + h * HS
      let dk = dq + C
      let dv = dq + 2 * C
      let dy = dout + b * T * C + h * HS
      let a = att + (b * NH + h) * T * T
      let base = h * T * T
      // The weights that multiplied v: the dropped-out ones when dropout was on.
      var weights = a
      if dropout.isActive {
        for i in 0..<(T * T) { scratchWeights[i] = dropKey.uniform(base + i) >= p ? a[i] * keep : 0 }
        weights = UnsafePointer(scratchWeights)
      }
      // dweights = dy v^T;  dv = weights^T dy
      cblas_sgemm(
        CblasRowMajor, CblasNoTrans, CblasTrans, Int32(T), Int32(T), Int32(HS),
        1, dy, Int32(C), v, rowStride, 0, scratchGrad, Int32(T))
      cblas_sgemm(
        CblasRowMajor, CblasTrans, CblasNoTrans, Int32(T), Int32(HS), Int32(T),
        1, weights, Int32(T), dy, Int32(C), 0, dv, rowStride)
      if dropout.isActive {
        for i in 0..<(T * T) { scratchGrad[i] = dropKey.uniform(base + i) >= p ? scratchGrad[i] * keep : 0 }
      }
      // Softmax backward, row by row: dscores = att * (datt - <att, datt>). Entries above the
      // diagonal come out 0 because att is 0 there.
      for i in 0..<T {
        let ai = a + i * T
        let gi = scratchGrad + i * T
        var dotProduct: Float = 0
        for j in 0...i { dotProduct += ai[j] * gi[j] }
        for j in 0...i { gi[j] = ai[j] * (gi[j] - dotProduct) }
        for j in (i + 1)..<T { gi[j] = 0 }
      }
      // dq = scale * dscores k;  dk = scale * dscores^T q
      cblas_sgemm(
        CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(T), Int32(HS), Int32(T),
        scale, scratchGrad, Int32(T), k, rowStride, 0, dq, rowStride)
      cblas_sgemm(
        CblasRowMajor, CblasTrans, CblasNoTrans, Int32(T), Int32(HS), Int32(T),
        scale, scratchGrad, Int32(T), q, rowStride, 0, dk, rowStride)
    }
  }
}
