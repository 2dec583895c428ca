// The SIMD exp and erf against libm over the ranges the kernels feed them.

@testable import AttnCore
import Foundation
import Testing

@Suite struct VectorMathTests {
  @Test func expMatchesLibm() {
    var worst: Float = 0
    var x: Float = -87
    while x < 88 {
      let v = vexp(Float8(repeating: x))[0]
      let reference = Foundation.exp(Double(x))
      worst = max(worst, Float(abs(Double(v) - reference) / reference))
      x += 0.0137
    }
    // float32 has 6e-8 relative resolution; 3e-7 is a few ulp.
    #expect(worst < 3e-7, "worst relative error \(worst)")
    #expect(vexp(Float8(repeating: -100))[0] == 0)
    #expect(vexp(Float8(repeating: 100))[0] == .infinity)
    #expect(vexp(Float8(repeating: -.infinity))[0] == 0)
    #expect(vexp(Float8(repeating: .nan))[0].isNaN)
  }

  @Test func erfMatchesLibm() {
    var worst: Double = 0
    var x: Float = -6
    while x < 6 {
      let v = verf(Float8(repeating: x))[0]
      worst = max(worst, abs(Double(v) - Foundation.erf(Double(x))))
      x += 0.001
    }
    // |erf| <= 1, so 5e-7 absolute is about 4 float32 ulp near 1 (measured: 3.6e-7).
    #expect(worst < 5e-7, "worst absolute error \(worst)")
  }
}
