// Rotary position embeddings (Su et al.), "rotate half" convention: within each head, channel i pairs
// with i + HS/2 and the pair turns by t * 10000^(-2i/HS). A rotation is orthogonal, so the backward is
// the same rotation by the negative angle.

#if canImport(Glibc)
  import Glibc
#else
  import Darwin
#endif

/// cos/sin tables [T, HS/2] for positions 0..<T.
func fillRotaryTables(
  _ cosTable: UnsafeMutablePointer<Float>, _ sinTable: UnsafeMutablePointer<Float>, _ T: Int, _ HS: Int
) {
  let half = HS / 2
  for t in 0..<T {
    for i in 0..<half {
      let angle = Double(t) * pow(10000, -2 * Double(i) / Double(HS))
      cosTable[t * half + i] = Float(cos(angle))
      sinTable[t * half + i] = Float(sin(angle))
    }
  }
}

/// Rotates q and k of every head of qkv[B, T, 3C] in place; `direction` is +1 (forward) or -1 (backward,
/// applied to dqkv).
func rotaryInPlace(
  _ qkv: UnsafeMutablePointer<Float>, _ cosTable: UnsafePointer<Float>,
  _ sinTable: UnsafePointer<Float>, direction: Float,
  _ B: Int, _ T: Int, _ C: Int, _ NH: Int
) {
  let HS = C / NH
  let half = HS / 2
  for b in 0..<B {
    for t in 0..<T {
      let row = qkv + (b * T + t) * 3 * C
      let cs = cosTable + t * half
      let sn = sinTable + t * half
      for part in 0..<2 {  // q, then k
        for h in 0..<NH {
          let x = row + part * C + h * HS
          for i in 0..<half {
            let x1 = x[i]
            let x2 = x[i + half]
            let s = direction * sn[i]
            x[i] = x1 * cs[i] - x2 * s
            x[i + half] = x1 * s + x2 * cs[i]
          }
        }
      }
    }
  }
}
