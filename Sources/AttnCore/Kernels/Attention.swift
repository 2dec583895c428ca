// Causal multi-head self-attention over a fused qkv[B, T, 3C] (q | k | v, head h at columns
// h*HS..<(h+1)*HS of each third). Per (batch, head): scores = q k^T / sqrt(HS) and y = att v are
// register-tiled products (TiledMatmul.swift) on strided views; only k (forward) and v (backward)
// are copied, transposed, into per-thread scratch so that every product streams contiguous rows.
// While one head computes, the next head's rows are prefetched (HeadRows).
// B batch, T time, C channels, NH heads, HS = C / NH.

import CPrefetch

#if canImport(Glibc)
  import Glibc
#else
  import Darwin
#endif

/// Query rows per block: block r only needs the keys 0..<(r+1)*rows, and within a block the tiles
/// skip what the causal mask removes, so about half of the square's work is done.
let attentionBlockRows = 64

/// Floats of scratch each pool thread needs: a [T, T] block of weights, a transposed [HS, T] head
/// (rows transposedStride(T) apart) and one number per query.
public func attentionScratchPerThread(blockSize T: Int, headSize HS: Int) -> Int {
  T * T + HS * transposedStride(T) + T
}

/// The row stride of a transposed head: an odd number of cache lines. The products read one line
/// from each of its HS rows per tile; at a stride of 2^k lines those lines share a few of L1's 64
/// sets and evict each other (T = 256: 1 KB apart, all in 4 sets).
func transposedStride(_ T: Int) -> Int { ((T + 15) / 16 | 1) * 16 }

// MARK: - Forward

/// out[B, T, C] = concat over heads of dropout(softmax(causal(q k^T / sqrt(HS)))) v   (=)
/// att[B, NH, T, T] = the softmax weights before dropout, zero above the diagonal (kept for backward).
/// scratch[threads, attentionScratchPerThread]: the transposed keys, and the dropped-out weights when
/// dropout is on.
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
    let scratch = scratch + thread * attentionScratchPerThread(blockSize: T, headSize: HS)
    let keysTransposed = scratch + T * T
    let ldk = transposedStride(T)
    let rowNumbers = keysTransposed + HS * ldk
    for pair in pairs {
      let (b, h) = pair.quotientAndRemainder(dividingBy: NH)
      let dropKey = dropout.key(sample: b, layer: layer, site: .attentionWeights)
      let q = qkv + b * T * 3 * C + h * HS
      let k = q + C
      let v = q + 2 * C
      let a = att + (b * NH + h) * T * T
      let y = out + b * T * C + h * HS
      let next = pair + 1 < pairs.upperBound
        ? HeadRows(pair: pair + 1, qkv: qkv, dout: nil, written: out, att: att, T: T, C: C, NH: NH) : nil
      transpose(keysTransposed, ldo: ldk, k, ldx: 3 * C, rows: T, columns: HS)
      for first in stride(from: 0, to: T, by: attentionBlockRows) {
        let rows = min(attentionBlockRows, T - first)
        let keys = first + rows
        let block = a + first * T
        tiledMatmul(
          block, ldc: T, q + first * 3 * C, rowStride: 3 * C, depthStride: 1, keysTransposed, ldb: ldk,
          m: rows, n: keys, depth: HS, alpha: scale, accumulate: false, trim: .columnsBelow(first))
        // In sweeps over the block rather than row by row: each row is a chain of dependent
        // reductions, and rows that depend on nothing of each other's overlap (45 against 50 ns
        // a row at T = 64).
        for i in first..<keys { rowNumbers[i] = causalRowMaximum(a + i * T, validCount: i + 1, T) }
        for i in first..<keys {
          rowNumbers[i] = exponentiate(a + i * T, validCount: i + 1, T, minus: rowNumbers[i])
        }
        for i in first..<keys {
          normalize(a + i * T, validCount: i + 1, T, dividingBy: rowNumbers[i])
          next?.prefetch(row: i, C: C, HS: HS, T: T)
        }
        var weights = UnsafePointer(block)
        if dropout.isActive {
          applyDropout(scratch + first * T, block, rows: first..<keys, T, dropKey, dropout.probability, base: h * T * T)
          weights = UnsafePointer(scratch + first * T)
        }
        tiledMatmul(
          y + first * C, ldc: C, weights, rowStride: T, depthStride: 1, v, ldb: 3 * C,
          m: rows, n: HS, depth: keys, alpha: 1, accumulate: false, trim: .depthBelow(first))
      }
    }
  }
}

// Softmax of a row over its causal entries 0..<validCount, numerically stable (the row's maximum
// is subtracted before exponentiating), in three passes; entries from validCount to T become 0.
// Whole 8-wide chunks go without masks or partial loads, and only the last partial chunk is
// masked: lanes past validCount read as -inf, so they add nothing and come out as the zeros the
// row must hold there. (Masking every chunk, with a memset for the rest of the row, took 57 ns a
// row at T = 64 where this takes 45: its branches were mispredicted at each row's last chunk.)

/// The row's largest causal entry.
@inline(__always)
func causalRowMaximum(_ row: UnsafePointer<Float>, validCount n: Int, _ T: Int) -> Float {
  var maxima = Float8(repeating: -.infinity)
  let whole = n & ~7
  for j in stride(from: 0, to: whole, by: 8) { maxima = larger(load8(row + j, 8), maxima) }
  if whole < n { maxima = larger(loadCausal(row + whole, valid: n - whole, readable: T - whole), maxima) }
  return horizontalMax(maxima)
}

/// row[j] = e^(row[j] - maximum) over the causal entries (0 past them to the chunk's end); returns
/// their sum.
@inline(__always)
func exponentiate(
  _ row: UnsafeMutablePointer<Float>, validCount n: Int, _ T: Int, minus maximum: Float
) -> Float {
  let maximum = Float8(repeating: maximum)
  let whole = n & ~7
  var sums = Float8(repeating: 0)
  for j in stride(from: 0, to: whole, by: 8) {
    let e = vexp(load8(row + j, 8) - maximum)
    sums += e
    store8(e, row + j, 8)
  }
  if whole < n {
    let e = vexp(loadCausal(row + whole, valid: n - whole, readable: T - whole) - maximum)
    sums += e
    store8(e, row + whole, min(8, T - whole))
  }
  return sums.sum()
}

/// The row's causal entries divided by sum, and 0 from them to T.
@inline(__always)
func normalize(_ row: UnsafeMutablePointer<Float>, validCount n: Int, _ T: Int, dividingBy sum: Float) {
  let inverse = 1 / sum
  let end = (n + 7) & ~7
  for j in stride(from: 0, to: end, by: 8) {
    let count = min(8, T - j)
    store8(load8(row + j, count) * inverse, row + j, count)
  }
  for j in stride(from: end, to: T, by: 8) { store8(Float8(), row + j, min(8, T - j)) }
}

/// x where x > y, else y: a compare and a blend. (pointwiseMax, which orders NaNs, compiled to a
/// loop over lanes: 42 against 6 ns a row.)
@_transparent
private func larger(_ x: Float8, _ y: Float8) -> Float8 { y.replacing(with: x, where: x .> y) }

/// Eight entries from p on, of which the first `valid` count and the rest read as -inf; only
/// `readable` entries exist from p on.
@inline(__always)
private func loadCausal(_ p: UnsafePointer<Float>, valid: Int, readable: Int) -> Float8 {
  let x = load8(p, min(8, readable))
  if valid >= 8 { return x }
  return x.replacing(with: Float8(repeating: -.infinity), where: laneIndices .>= SIMD8<Int32>(repeating: Int32(valid)))
}

/// The largest lane. (The maxima it is given hold no NaN: `x .> maxima` is false for a NaN lane, as
/// a scalar `where x > max` would be; a NaN score still reaches exp and makes the row NaN.)
@inline(__always)
private func horizontalMax(_ x: Float8) -> Float {
  let a = x.lowHalf.replacing(with: x.highHalf, where: x.highHalf .> x.lowHalf)
  let b = a.lowHalf.replacing(with: a.highHalf, where: a.highHalf .> a.lowHalf)
  return b[1] > b[0] ? b[1] : b[0]
}

/// grad[0..<n] = att * (grad - <att, grad>) for n = validCount; grad[n..<keys] = 0. att is 0 past n.
@inline(__always)
func softmaxBackwardRow(
  _ grad: UnsafeMutablePointer<Float>, _ att: UnsafePointer<Float>, validCount n: Int, _ keys: Int
) {
  // What lies in grad past n is not part of the row (it may be a product past the diagonal, or
  // left from another head), so it is masked rather than trusted to meet a zero weight. Only the
  // last partial chunk needs the mask (as in the forward's softmax: 19 against 29 ns a row).
  let whole = n & ~7
  let count = min(8, keys - whole)
  var dots = Float8()
  for j in stride(from: 0, to: whole, by: 8) { dots.addProduct(load8(att + j, 8), load8(grad + j, 8)) }
  if whole < n { dots.addProduct(load8(att + whole, count), keepFirst(load8(grad + whole, count), n - whole)) }
  let dot = Float8(repeating: dots.sum())
  for j in stride(from: 0, to: whole, by: 8) { store8(load8(att + j, 8) * (load8(grad + j, 8) - dot), grad + j, 8) }
  if whole < n {
    let g = keepFirst(load8(grad + whole, count), n - whole)
    store8(load8(att + whole, count) * (g - dot), grad + whole, count)
  }
  for j in stride(from: (n + 7) & ~7, to: keys, by: 8) { store8(Float8(), grad + j, min(8, keys - j)) }
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

/// One (batch, head)'s rows: its q (k and v at +C and +2C, rows 3C apart), its [T, T] block of
/// attention weights, and in the backward pass its output gradient dy (rows C apart). What the pass
/// writes lies at the same offsets as q or dy: y (rows C apart) forward; dq, dk and dv backward.
private struct HeadRows {
  let q: UnsafePointer<Float>
  let dy: UnsafePointer<Float>?
  let written: UnsafePointer<Float>
  let weights: UnsafePointer<Float>

  init(
    pair: Int, qkv: UnsafePointer<Float>, dout: UnsafePointer<Float>?, written: UnsafePointer<Float>,
    att: UnsafePointer<Float>, T: Int, C: Int, NH: Int
  ) {
    let (b, h) = pair.quotientAndRemainder(dividingBy: NH)
    let HS = C / NH
    q = qkv + b * T * 3 * C + h * HS
    dy = dout.map { $0 + b * T * C + h * HS }
    self.written = written + b * T * (dout == nil ? C : 3 * C) + h * HS
    weights = att + pair * T * T
  }

  /// Asks for row i of this head while the previous head computes. A head's rows are strided
  /// slices that the hardware prefetcher does not foresee: their first touch, from L3, took about a
  /// fifth of attention's time (tiny and small, 1 thread: +3-4% a step). The weights' rows are
  /// written forward and read first by dv's product backward, which they had made the slowest phase
  /// (tiny: 4.4 µs a head, 2.6 with them prefetched).
  @inline(__always)
  func prefetch(row i: Int, C: Int, HS: Int, T: Int) {
    let weightsRow = weights + i * T
    for offset in stride(from: 0, to: T, by: 16) {
      if dy == nil {
        prefetch_for_writing(weightsRow + offset)
      } else {
        prefetch_for_reading(weightsRow + offset)
      }
    }
    let q = self.q + i * 3 * C
    for offset in stride(from: 0, to: HS, by: 16) {
      prefetch_for_reading(q + offset)
      prefetch_for_reading(q + C + offset)
      prefetch_for_reading(q + 2 * C + offset)
      if let dy {
        prefetch_for_reading(dy + i * C + offset)
        let dq = written + i * 3 * C + offset
        prefetch_for_writing(dq)
        prefetch_for_writing(dq + C)
        prefetch_for_writing(dq + 2 * C)
      } else {
        prefetch_for_writing(written + i * C + offset)
      }
    }
  }
}

// MARK: - Backward

/// dqkv[B, T, 3C] = gradient with respect to qkv (=), from dout[B, T, C].
/// scratchWeights, scratchGrad: [threads, attentionScratchPerThread] each.
func attentionBackward(
  _ dqkv: UnsafeMutablePointer<Float>, _ dout: UnsafePointer<Float>,
  _ qkv: UnsafePointer<Float>, _ att: UnsafePointer<Float>,
  _ scratchWeights: UnsafeMutablePointer<Float>, _ scratchGrad: UnsafeMutablePointer<Float>,
  _ dropout: DropoutContext, layer: Int,
  _ B: Int, _ T: Int, _ C: Int, _ NH: Int, _ pool: WorkerPool
) {
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
    let p = dropout.probability
    let keep = 1 / (1 - p)
    let perThread = attentionScratchPerThread(blockSize: T, headSize: HS)
    let scratchWeights = scratchWeights + thread * perThread
    let valuesTransposed = scratchWeights + T * T
    let ldv = transposedStride(T)
    let scratchGrad = scratchGrad + thread * perThread
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
      let next = pair + 1 < pairs.upperBound
        ? HeadRows(pair: pair + 1, qkv: qkv, dout: dout, written: dqkv, att: att, T: T, C: C, NH: NH) : nil
      transpose(valuesTransposed, ldo: ldv, v, ldx: 3 * C, rows: T, columns: HS)
      // Last query block first: it reaches every key, so it sets dk and dv (=) and the earlier
      // blocks add to them; dqkv needs no zeroing pass.
      for first in stride(from: (T - 1) / attentionBlockRows * attentionBlockRows, through: 0, by: -attentionBlockRows) {
        let rows = min(attentionBlockRows, T - first)
        let keys = first + rows
        let accumulate = keys < T
        let block = a + first * T
        let grad = scratchGrad + first * T
        // The weights that multiplied v: the dropped-out ones when dropout was on.
        var weights = block
        if dropout.isActive {
          applyDropout(scratchWeights + first * T, block, rows: first..<keys, T, dropKey, p, base: base)
          weights = UnsafePointer(scratchWeights + first * T)
        }
        // dweights = dy v^T;  dv += weights^T dy
        tiledMatmul(
          grad, ldc: T, dy + first * C, rowStride: C, depthStride: 1, valuesTransposed, ldb: ldv,
          m: rows, n: keys, depth: HS, alpha: 1, accumulate: false, trim: .columnsBelow(first))
        tiledMatmul(
          dv, ldc: 3 * C, weights, rowStride: 1, depthStride: T, dy + first * C, ldb: C,
          m: keys, n: HS, depth: rows, alpha: 1, accumulate: accumulate, trim: .depthFrom(-first))
        // Through dropout, then softmax row by row: dscores = att * (datt - <att, datt>).
        for (r, i) in (first..<keys).enumerated() {
          let ai = a + i * T
          let gi = grad + r * T
          if dropout.isActive {
            for j in 0...i { gi[j] = dropKey.uniform(base + i * T + j) >= p ? gi[j] * keep : 0 }
          }
          softmaxBackwardRow(gi, ai, validCount: i + 1, keys)
          next?.prefetch(row: i, C: C, HS: HS, T: T)
        }
        // dq = scale * dscores k;  dk += scale * dscores^T q
        tiledMatmul(
          dq + first * 3 * C, ldc: 3 * C, grad, rowStride: T, depthStride: 1, k, ldb: 3 * C,
          m: rows, n: HS, depth: keys, alpha: scale, accumulate: false, trim: .depthBelow(first))
        tiledMatmul(
          dk, ldc: 3 * C, grad, rowStride: 1, depthStride: T, q + first * 3 * C, ldb: 3 * C,
          m: keys, n: HS, depth: rows, alpha: scale, accumulate: accumulate, trim: .depthFrom(-first))
      }
    }
  }
}
