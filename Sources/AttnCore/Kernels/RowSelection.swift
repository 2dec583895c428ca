// The rows of a [N, C] buffer that a masked language model predicts, side by side: its head and
// loss then cost what the hidden tokens need (about one in seven) instead of every position's.
// rows[M] are increasing row numbers below N.

// MARK: - Forward

/// out[M, C] (=) = x[rows[m], :]
func selectRowsForward(
  _ out: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, rows: UnsafePointer<Int32>, _ M: Int, _ C: Int
) {
  for m in 0..<M { (out + m * C).update(from: x + Int(rows[m]) * C, count: C) }
}

// MARK: - Backward

/// dx[N, C] (=): row rows[m] is dout[m, :]; every other row is zero.
func selectRowsBackward(
  _ dx: UnsafeMutablePointer<Float>, _ dout: UnsafePointer<Float>, rows: UnsafePointer<Int32>, _ M: Int, _ N: Int,
  _ C: Int
) {
  var next = 0
  for m in 0..<M {
    let row = Int(rows[m])
    (dx + next * C).update(repeating: 0, count: (row - next) * C)
    (dx + row * C).update(from: dout + m * C, count: C)
    next = row + 1
  }
  (dx + next * C).update(repeating: 0, count: (N - next) * C)
}
