// A sequence's vector for classification, from its real tokens: sequence b holds lengths[b] real
// tokens followed by padding, and pooling never reads the padding.
// "mean": the average of the real tokens; "max": each channel's largest value over the real tokens
// (as a CNN's max-over-time pooling: a strong feature anywhere counts in full); "first": token 0 (a
// [CLS]-style token); "last": the last real token (what a causal model has seen everything by).
// B batch, T time (padded), C channels.

public enum Pooling: String, CaseIterable, Sendable { case mean, max, first, last }

// MARK: - Forward

/// out[B, C] (=) from x[B, T, C].
func poolingForward(
  _ out: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, lengths: UnsafePointer<Int32>, _ pooling: Pooling,
  _ B: Int, _ T: Int, _ C: Int
) {
  for b in 0..<B {
    let L = Int(lengths[b])
    let o = out + b * C
    let xb = x + b * T * C
    switch pooling {
    case .first: o.update(from: xb, count: C)
    case .last: o.update(from: xb + (L - 1) * C, count: C)
    case .max:
      o.update(from: xb, count: C)
      for t in 1..<max(1, L) {
        let row = xb + t * C
        for c in 0..<C where row[c] > o[c] { o[c] = row[c] }
      }
    case .mean:
      o.update(from: xb, count: C)
      for t in 1..<max(1, L) {
        let row = xb + t * C
        for c in 0..<C { o[c] += row[c] }
      }
      let scale = 1 / Float(L)
      for c in 0..<C { o[c] *= scale }
    }
  }
}

// MARK: - Backward

/// dx[B, T, C] (=) from dout[B, C]: the real tokens pooled get their share, every other row 0. `x`
/// is the forward's input: "max" sends each channel's gradient to the first token holding its maximum.
func poolingBackward(
  _ dx: UnsafeMutablePointer<Float>, _ dout: UnsafePointer<Float>, _ x: UnsafePointer<Float>, lengths: UnsafePointer<Int32>,
  _ pooling: Pooling, _ B: Int, _ T: Int, _ C: Int
) {
  dx.update(repeating: 0, count: B * T * C)
  for b in 0..<B {
    let L = Int(lengths[b])
    let d = dout + b * C
    let dxb = dx + b * T * C
    switch pooling {
    case .first: dxb.update(from: d, count: C)
    case .last: (dxb + (L - 1) * C).update(from: d, count: C)
    case .max:
      let xb = x + b * T * C
      for c in 0..<C {
        var best = 0
        for t in 1..<max(1, L) where xb[t * C + c] > xb[best * C + c] { best = t }
        dxb[best * C + c] = d[c]
      }
    case .mean:
      let scale = 1 / Float(L)
      for t in 0..<L {
        let row = dxb + t * C
        for c in 0..<C { row[c] = d[c] * scale }
      }
    }
  }
}
