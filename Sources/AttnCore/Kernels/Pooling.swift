// A sequence's vector for classification, from its real tokens: sequence b holds lengths[b] real
// tokens followed by padding, and pooling never reads the padding.
// "mean": the average of the real tokens; "first": token 0 (a [CLS]-style token); "last": the last
// real token (what a causal model has seen everything by). B batch, T time (padded), C channels.

public enum Pooling: String, CaseIterable, Sendable { case mean, first, last }

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

/// dx[B, T, C] (=) from dout[B, C]: the real tokens pooled get their share, every other row 0.
func poolingBackward(
  _ dx: UnsafeMutablePointer<Float>, _ dout: UnsafePointer<Float>, lengths: UnsafePointer<Int32>, _ pooling: Pooling,
  _ B: Int, _ T: Int, _ C: Int
) {
  dx.update(repeating: 0, count: B * T * C)
  for b in 0..<B {
    let L = Int(lengths[b])
    let d = dout + b * C
    let dxb = dx + b * T * C
    switch pooling {
    case .first: dxb.update(from: d, count: C)
    case .last: (dxb + (L - 1) * C).update(from: d, count: C)
    case .mean:
      let scale = 1 / Float(L)
      for t in 0..<L {
        let row = dxb + t * C
        for c in 0..<C { row[c] = d[c] * scale }
      }
    }
  }
}
