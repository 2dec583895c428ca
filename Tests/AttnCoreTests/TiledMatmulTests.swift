// The register-tiled product against a naive Double loop: every trim, shapes that leave partial
// row tiles (m % tileRows) and partial column chunks (n % 8, n % 16), a transposed (strided) a, and both
// the overwriting and the accumulating form. Entries the trim leaves out must keep their contents.

@testable import AttnCore
import Testing

@Suite struct TiledMatmulTests {
  struct Case: CustomTestStringConvertible, Sendable {
    let m, n, depth: Int
    let transposedA: Bool
    let accumulate: Bool
    let trim: Trim
    var testDescription: String { "m\(m) n\(n) k\(depth) \(transposedA ? "aT" : "a") \(accumulate ? "+=" : "=") \(trim)" }
  }

  enum Trim: Sendable, CustomStringConvertible {
    case none, columnsBelow(Int), depthBelow(Int), depthFrom(Int)
    var causal: CausalTrim {
      switch self {
      case .none: .none
      case .columnsBelow(let o): .columnsBelow(o)
      case .depthBelow(let o): .depthBelow(o)
      case .depthFrom(let o): .depthFrom(o)
      }
    }
    var description: String {
      switch self {
      case .none: "none"
      case .columnsBelow(let o): "columnsBelow(\(o))"
      case .depthBelow(let o): "depthBelow(\(o))"
      case .depthFrom(let o): "depthFrom(\(o))"
      }
    }
  }

  static let cases: [Case] = {
    var cases: [Case] = []
    for (m, n, depth) in [(1, 8, 1), (7, 13, 5), (64, 64, 32), (13, 40, 19), (9, 3, 70), (33, 17, 64)] {
      for transposedA in [false, true] {
        for accumulate in [false, true] {
          for trim in [Trim.none, .columnsBelow(0), .columnsBelow(5), .depthBelow(0), .depthBelow(3), .depthFrom(0), .depthFrom(-6)] {
            cases.append(Case(m: m, n: n, depth: depth, transposedA: transposedA, accumulate: accumulate, trim: trim))
          }
        }
      }
    }
    return cases
  }()

  @Test(arguments: cases)
  func matchesNaiveProduct(_ c: Case) {
    let (m, n, depth) = (c.m, c.n, c.depth)
    // Strides larger than the extents, as for the views into qkv.
    let (lda, ldb, ldc) = (c.transposedA ? m + 3 : depth + 2, n + 5, n + 7)
    let aCount = c.transposedA ? depth * lda : m * lda
    let a = randomBuffer(aCount, seed: 1)
    let b = randomBuffer(depth * ldb, seed: 2)
    let initial = randomBuffer(m * ldc, seed: 3)
    let out = FloatBuffer(count: m * ldc)
    out.pointer.update(from: initial.pointer, count: m * ldc)
    let alpha: Float = 0.75
    let (rowStride, depthStride) = c.transposedA ? (1, lda) : (lda, 1)
    tiledMatmul(
      out.pointer, ldc: ldc, a.pointer, rowStride: rowStride, depthStride: depthStride, b.pointer, ldb: ldb,
      m: m, n: n, depth: depth, alpha: alpha, accumulate: c.accumulate, trim: c.trim.causal)

    var worst = 0.0
    for r in 0..<m {
      let tileFirst = r / tileRows * tileRows
      let tileEnd = min(tileFirst + tileRows, m)
      var (columnEnd, depthBegin, depthEnd) = (n, 0, depth)
      switch c.trim {
      case .none: break
      case .columnsBelow(let o): columnEnd = min(n, tileEnd + o)
      case .depthBelow(let o): depthEnd = min(depth, tileEnd + o)
      case .depthFrom(let o): depthBegin = max(0, tileFirst + o)
      }
      // Columns up to the end of the 8-wide chunk holding columnEnd - 1 may be computed; past it,
      // nothing may change.
      let computedEnd = columnEnd == 0 ? 0 : min(n, (columnEnd + 7) / 8 * 8)
      for j in 0..<ldc {
        let old = Double(initial.pointer[r * ldc + j])
        let got = Double(out.pointer[r * ldc + j])
        if j >= computedEnd {
          #expect(got == old, "row \(r) column \(j) outside the trimmed product changed")
          continue
        }
        var sum = 0.0
        for k in max(0, depthBegin)..<max(depthBegin, depthEnd) {
          sum += Double(a.pointer[r * rowStride + k * depthStride]) * Double(b.pointer[k * ldb + j])
        }
        let expected = Double(alpha) * sum + (c.accumulate ? old : 0)
        if j < columnEnd { worst = max(worst, abs(got - expected)) }
      }
    }
    // Sums of up to 70 products of values below 1 in float32: a few ulp of the magnitude.
    #expect(worst < 2e-5, "worst absolute error \(worst)")
  }
}
