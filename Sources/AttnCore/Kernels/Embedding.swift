// Token embedding plus the absolute position term: a learned table (wpe) or fixed sinusoids.
// Rotary encodings add nothing here; they rotate q and k inside attention (RoPE.swift).

// MARK: - Forward

/// out[B, T, C] = wte[tokens[b, t]] + positions[t]   (positions: wpe or the sinusoid table; nil for none)
func embeddingForward(
  _ out: UnsafeMutablePointer<Float>, _ tokens: UnsafePointer<Int32>,
  _ wte: UnsafePointer<Float>, _ positions: UnsafePointer<Float>?,
  _ B: Int, _ T: Int, _ C: Int
) {
  for b in 0..<B {
    for t in 0..<T {
      let y = out + (b * T + t) * C
      let e = wte + Int(tokens[b * T + t]) * C
      if let positions {
        let p = positions + t * C
        for i in 0..<C { y[i] = e[i] + p[i] }
      } else {
        y.update(from: e, count: C)
      }
    }
  }
}

// MARK: - Backward

/// dwte[tokens[b, t]] += dout[b, t];  dwpe[t] += dout[b, t] when the positions are learned.
func embeddingBackward(
  _ dwte: UnsafeMutablePointer<Float>, _ dwpe: UnsafeMutablePointer<Float>?,
  _ dout: UnsafePointer<Float>, _ tokens: UnsafePointer<Int32>,
  _ B: Int, _ T: Int, _ C: Int
) {
  for b in 0..<B {
    for t in 0..<T {
      let d = dout + (b * T + t) * C
      let e = dwte + Int(tokens[b * T + t]) * C
      for i in 0..<C { e[i] += d[i] }
      if let dwpe {
        let p = dwpe + t * C
        for i in 0..<C { p[i] += d[i] }
      }
    }
  }
}

/// The fixed encodings of Vaswani et al.: pe[t, 2i] = sin(t / 10000^(2i/C)), pe[t, 2i+1] = cos(...).
func fillSinusoidalPositions(_ table: UnsafeMutablePointer<Float>, _ T: Int, _ C: Int) {
  for t in 0..<T {
    for i in stride(from: 0, to: C, by: 2) {
      let angle = Double(t) / pow(10000, Double(i) / Double(C))
      table[t * C + i] = Float(sin(angle))
      if i + 1 < C { table[t * C + i + 1] = Float(cos(angle)) }
    }
  }
}

#if canImport(Glibc)
  import Glibc
#else
  import Darwin
#endif
