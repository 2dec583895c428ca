// Multi-head self-attention in which every real token sees every real token of its sequence (an
// encoder, for classification): sequence b holds lengths[b] real tokens followed by padding, keys at
// or past lengths[b] are masked, and padded query rows are not computed (their output, and every
// gradient they carry, is 0, so padding never reaches a real token). The same register-tiled
// products and row softmax as the causal kernel (Attention.swift), without its triangle.
// B batch, T time (padded), C channels, NH heads, HS = C / NH; L = lengths[b].

// MARK: - Forward

/// out[B, T, C] = per head, softmax over the L real keys of (q k^T / sqrt(HS)), dropped out, times v,
/// for the L real rows; 0 in padded rows (=). att[B, NH, T, T]: the weights before dropout, 0
/// outside the L x L block. scratch: as the causal kernel's.
func bidirectionalAttentionForward(
  _ out: UnsafeMutablePointer<Float>, _ att: UnsafeMutablePointer<Float>,
  _ qkv: UnsafePointer<Float>, lengths: UnsafePointer<Int32>, _ scratch: UnsafeMutablePointer<Float>,
  _ dropout: DropoutContext, layer: Int,
  _ B: Int, _ T: Int, _ C: Int, _ NH: Int, _ pool: WorkerPool
) {
  pool.parallelFor(
    B * NH,
    BidirectionalForward(
      out: out, att: att, qkv: qkv, lengths: lengths, scratch: scratch, dropout: dropout, layer: layer, T: T, C: C, NH: NH))
}

private struct BidirectionalForward: ParallelKernel {
  let out, att: UnsafeMutablePointer<Float>
  let qkv: UnsafePointer<Float>
  let lengths: UnsafePointer<Int32>
  let scratch: UnsafeMutablePointer<Float>
  let dropout: DropoutContext
  let layer, T, C, NH: Int

  func run(_ pairs: Range<Int>, thread: Int) {
    let HS = C / NH
    let scale = 1 / Float(HS).squareRoot()
    let scratch = scratch + thread * attentionScratchPerThread(blockSize: T, headSize: HS)
    let keysTransposed = scratch + T * T
    let ldk = transposedStride(T)
    for pair in pairs {
      let (b, h) = pair.quotientAndRemainder(dividingBy: NH)
      let L = Int(lengths[b])
      let q = qkv + b * T * 3 * C + h * HS
      let a = att + pair * T * T
      let y = out + b * T * C + h * HS
      a.update(repeating: 0, count: T * T)
      for i in L..<T { (y + i * C).update(repeating: 0, count: HS) }
      guard L > 0 else { continue }
      transpose(keysTransposed, ldo: ldk, q + C, ldx: 3 * C, rows: L, columns: HS)
      tiledMatmul(a, ldc: T, q, rowStride: 3 * C, depthStride: 1, keysTransposed, ldb: ldk, m: L, n: L, depth: HS, alpha: scale, accumulate: false)
      for i in 0..<L {
        let row = a + i * T
        let maximum = causalRowMaximum(row, validCount: L, T)
        normalize(row, validCount: L, T, dividingBy: exponentiate(row, validCount: L, T, minus: maximum))
      }
      var weights = UnsafePointer(a)
      if dropout.isActive {
        let key = dropout.key(sample: b, layer: layer, site: .attentionWeights)
        let kept = scratch
        let keep = 1 / (1 - dropout.probability)
        for i in 0..<L {
          for j in 0..<L { kept[i * T + j] = key.uniform(h * T * T + i * T + j) >= dropout.probability ? a[i * T + j] * keep : 0 }
        }
        weights = UnsafePointer(kept)
      }
      tiledMatmul(y, ldc: C, weights, rowStride: T, depthStride: 1, q + 2 * C, ldb: 3 * C, m: L, n: HS, depth: L, alpha: 1, accumulate: false)
    }
  }
}

// MARK: - Backward

/// dqkv[B, T, 3C] (=) from dout[B, T, C]; padded rows of dq, dk, dv are 0.
func bidirectionalAttentionBackward(
  _ dqkv: UnsafeMutablePointer<Float>, _ dout: UnsafePointer<Float>,
  _ qkv: UnsafePointer<Float>, _ att: UnsafePointer<Float>, lengths: UnsafePointer<Int32>,
  _ scratchWeights: UnsafeMutablePointer<Float>, _ scratchGrad: UnsafeMutablePointer<Float>,
  _ dropout: DropoutContext, layer: Int,
  _ B: Int, _ T: Int, _ C: Int, _ NH: Int, _ pool: WorkerPool
) {
  pool.parallelFor(
    B * NH,
    BidirectionalBackward(
      dqkv: dqkv, dout: dout, qkv: qkv, att: att, lengths: lengths, scratchWeights: scratchWeights,
      scratchGrad: scratchGrad, dropout: dropout, layer: layer, T: T, C: C, NH: NH))
}

private struct BidirectionalBackward: ParallelKernel {
  let dqkv: UnsafeMutablePointer<Float>
  let dout, qkv, att: UnsafePointer<Float>
  let lengths: UnsafePointer<Int32>
  let scratchWeights, scratchGrad: UnsafeMutablePointer<Float>
  let dropout: DropoutContext
  let layer, T, C, NH: Int

  func run(_ pairs: Range<Int>, thread: Int) {
    let HS = C / NH
    let scale = 1 / Float(HS).squareRoot()
    let p = dropout.probability
    let keep = 1 / (1 - p)
    let perThread = attentionScratchPerThread(blockSize: T, headSize: HS)
    let weightsScratch = scratchWeights + thread * perThread
    let valuesTransposed = weightsScratch + T * T
    let ldv = transposedStride(T)
    let grad = scratchGrad + thread * perThread
    for pair in pairs {
      let (b, h) = pair.quotientAndRemainder(dividingBy: NH)
      let L = Int(lengths[b])
      let q = qkv + b * T * 3 * C + h * HS
      let dq = dqkv + b * T * 3 * C + h * HS
      let dy = dout + b * T * C + h * HS
      let a = att + pair * T * T
      for i in L..<T {
        for part in 0..<3 { (dq + i * 3 * C + part * C).update(repeating: 0, count: HS) }
      }
      guard L > 0 else { continue }
      let key = dropout.key(sample: b, layer: layer, site: .attentionWeights)
      var weights = a
      if dropout.isActive {
        for i in 0..<L {
          for j in 0..<L {
            weightsScratch[i * T + j] = key.uniform(h * T * T + i * T + j) >= p ? a[i * T + j] * keep : 0
          }
        }
        weights = UnsafePointer(weightsScratch)
      }
      transpose(valuesTransposed, ldo: ldv, q + 2 * C, ldx: 3 * C, rows: L, columns: HS)
      // dweights = dy v^T;  dv = weights^T dy
      tiledMatmul(grad, ldc: T, dy, rowStride: C, depthStride: 1, valuesTransposed, ldb: ldv, m: L, n: L, depth: HS, alpha: 1, accumulate: false)
      tiledMatmul(dq + 2 * C, ldc: 3 * C, weights, rowStride: 1, depthStride: T, dy, ldb: C, m: L, n: HS, depth: L, alpha: 1, accumulate: false)
      // Through dropout, then softmax row by row.
      for i in 0..<L {
        let gi = grad + i * T
        if dropout.isActive {
          for j in 0..<L { gi[j] = key.uniform(h * T * T + i * T + j) >= p ? gi[j] * keep : 0 }
        }
        softmaxBackwardRow(gi, a + i * T, validCount: L, L)
      }
      // dq = scale * dscores k;  dk = scale * dscores^T q
      tiledMatmul(dq, ldc: 3 * C, grad, rowStride: T, depthStride: 1, q + C, ldb: 3 * C, m: L, n: HS, depth: L, alpha: scale, accumulate: false)
      tiledMatmul(dq + C, ldc: 3 * C, grad, rowStride: 1, depthStride: T, q, ldb: 3 * C, m: L, n: HS, depth: L, alpha: scale, accumulate: false)
    }
  }
}
