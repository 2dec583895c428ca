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

/// Query rows per block: block r only needs the keys 0..<(r+1)*rows, so blocking skips most of
/// the masked upper triangle (at T = 256, 62% of the square's work is left) while each sgemm stays
/// large enough to run near the BLAS peak.
let attentionBlockRows = 64

// MARK: - Forward

/// out[B, T, C] = concat over heads of dropout(softmax(causal(q k^T / sqrt(HS)))) v   (=)
/// att[B, NH, T, T] = the softmax weights before dropout, zero above the diagonal (kept for backward).
/// scratch[threads, T, T]: room for the dropped-out weights when dropout is on, one per pool thread.
/// (batch, head) pairs are shared among the pool's threads.
func attentionForward(
  _ out: UnsafeMutablePointer<Float>, _ att: UnsafeMutablePointer<Float>,
  _ qkv: UnsafePointer<Float>, _ scratch: UnsafeMutablePointer<Float>,
  _ dropout: DropoutContext, layer: Int,
  _ B: Int, _ T: Int, _ C: Int, _ NH: Int, _ pool: WorkerPool
) {
  pool.parallelFor(
    B * NH,
    AttentionForward(
      out: out, att: att, qkv: qkv, scratch: scratch, dropout: dropout, layer: layer, T: T, C: C, NH: NH))
}

private struct AttentionForward: ParallelKernel {
  let out, att: UnsafeMutablePointer<Float>
  let qkv: UnsafePointer<Float>
  let scratch: UnsafeMutablePointer<Float>
  let dropout: DropoutContext
  let layer, T, C, NH: Int

  func run(_ pairs: Range<Int>, thread: Int) {
    let HS = C / NH
    let scale = 1 / Float(HS).squareRoot()
    let rowStride = Int32(3 * C)
    let scratch = scratch + thread * T * T
    for pair in pairs {
      let (b, h) = pair.quotientAndRemainder(dividingBy: NH)
      let dropKey = dropout.key(sample: b, layer: layer, site: .attentionWeights)
      let q = qkv + b * T * 3 * C + h * HS
      let k = q + C
      let v = q + 2 * C
      let a = att + (b * NH + h) * T * T
      let y = out + b * T * C + h * HS
      for first in stride(from: 0, to: T, by: attentionBlockRows) {
        let rows = min(attentionBlockRows, T - first)
        let keys = first + rows
        let block = a + first * T
        cblas_sgemm(
          CblasRowMajor, CblasNoTrans, CblasTrans, Int32(rows), Int32(keys), Int32(HS),
          scale, q + first * 3 * C, rowStride, k, rowStride, 0, block, Int32(T))
        for i in first..<keys { causalSoftmaxRow(a + i * T, validCount: i + 1, T) }
        var weights = UnsafePointer(block)
        if dropout.isActive {
          applyDropout(scratch + first * T, block, rows: first..<keys, T, dropKey, dropout.probability, base: h * T * T)
          weights = UnsafePointer(scratch + first * T)
        }
        cblas_sgemm(
          CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(rows), Int32(HS), Int32(keys),
          1, weights, Int32(T), v, rowStride, 0, y + first * C, Int32(C))
      }
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

/// out[i, j] = x[i, j] * mask / (1 - p) for the causal entries j <= i of the given rows, 0 above.
/// Element (i, j) of head h draws its mask from index base + i*T + j of the sample's key.
@inline(__always)
private func applyDropout(
  _ out: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, rows: Range<Int>, _ T: Int,
  _ key: RandomKey, _ p: Float, base: Int
) {
  let keep = 1 / (1 - p)
  for (r, i) in rows.enumerated() {
    let o = out + r * T
    let xi = x + r * T
    for j in 0...i { o[j] = key.uniform(base + i * T + j) >= p ? xi[j] * keep : 0 }
    for j in (i + 1)..<T { o[j] = 0 }
  }
}

// MARK: - Backward

/// dqkv[B, T, 3C] = gradient with respect to qkv (=), from dout[B, T, C].
/// scratchWeights, scratchGrad: [threads, T, T] each.
func attentionBackward(
  _ dqkv: UnsafeMutablePointer<Float>, _ dout: UnsafePointer<Float>,
  _ qkv: UnsafePointer<Float>, _ att: UnsafePointer<Float>,
  _ scratchWeights: UnsafeMutablePointer<Float>, _ scratchGrad: UnsafeMutablePointer<Float>,
  _ dropout: DropoutContext, layer: Int,
  _ B: Int, _ T: Int, _ C: Int, _ NH: Int, _ pool: WorkerPool
) {
  // dk and dv collect contributions from every later query block.
  dqkv.update(repeating: 0, count: B * T * 3 * C)
  pool.parallelFor(
    B * NH,
    AttentionBackward(
      dqkv: dqkv, dout: dout, qkv: qkv, att: att, scratchWeights: scratchWeights,
      scratchGrad: scratchGrad, dropout: dropout, layer: layer, T: T, C: C, NH: NH))
}

private struct AttentionBackward: ParallelKernel {
  let dqkv: UnsafeMutablePointer<Float>
  let dout, qkv, att: UnsafePointer<Float>
  let scratchWeights, scratchGrad: UnsafeMutablePointer<Float>
  let dropout: DropoutContext
  let layer, T, C, NH: Int

  func run(_ pairs: Range<Int>, thread: Int) {
    let HS = C / NH
    let scale = 1 / Float(HS).squareRoot()
    let rowStride = Int32(3 * C)
    let p = dropout.probability
    let keep = 1 / (1 - p)
    let scratchWeights = scratchWeights + thread * T * T
    let scratchGrad = scratchGrad + thread * T * T
    for pair in pairs {
      let (b, h) = pair.quotientAndRemainder(dividingBy: NH)
      let dropKey = dropout.key(sample: b, layer: layer, site: .attentionWeights)
      let q = qkv + b * T * 3 * C + h * HS
      let k = q + C
      let v = q + 2 * C
      let dq = dqkv + b * T * 3 * C + h * HS
      let dk = dq + C
      let dv = dq + 2 * C
      let dy = dout + b * T * C + h * HS
      let a = att + (b * NH + h) * T * T
      let base = h * T * T
      for first in stride(from: 0, to: T, by: attentionBlockRows) {
        let rows = min(attentionBlockRows, T - first)
        let keys = first + rows
        let block = a + first * T
        let grad = scratchGrad + first * T
        // The weights that multiplied v: the dropped-out ones when dropout was on.
        var weights = block
        if dropout.isActive {
          applyDropout(scratchWeights + first * T, block, rows: first..<keys, T, dropKey, p, base: base)
          weights = UnsafePointer(scratchWeights + first * T)
        }
        // dweights = dy v^T;  dv += weights^T dy
        cblas_sgemm(
          CblasRowMajor, CblasNoTrans, CblasTrans, Int32(rows), Int32(keys), Int32(HS),
          1, dy + first * C, Int32(C), v, rowStride, 0, grad, Int32(T))
        cblas_sgemm(
          CblasRowMajor, CblasTrans, CblasNoTrans, Int32(keys), Int32(HS), Int32(rows),
          1, weights, Int32(T), dy + first * C, Int32(C), 1, dv, rowStride)
        // Through dropout, then softmax row by row: dscores = att * (datt - <att, datt>).
        for (r, i) in (first..<keys).enumerated() {
          let ai = a + i * T
          let gi = grad + r * T
          if dropout.isActive {
            for j in 0...i { gi[j] = dropKey.uniform(base + i * T + j) >= p ? gi[j] * keep : 0 }
          }
          let dotProduct = simdDot(ai, gi, i + 1)
          for j in 0...i { gi[j] = ai[j] * (gi[j] - dotProduct) }
          for j in (i + 1)..<keys { gi[j] = 0 }
        }
        // dq = scale * dscores k;  dk += scale * dscores^T q
        cblas_sgemm(
          CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(rows), Int32(HS), Int32(keys),
          scale, grad, Int32(T), k, rowStride, 0, dq + first * 3 * C, rowStride)
        cblas_sgemm(
          CblasRowMajor, CblasTrans, CblasNoTrans, Int32(keys), Int32(HS), Int32(rows),
          scale, grad, Int32(T), q + first * 3 * C, rowStride, 1, dk, rowStride)
      }
    }
  }
}
