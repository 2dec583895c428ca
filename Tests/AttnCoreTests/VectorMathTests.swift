// The SIMD exp against libm over the range the kernels feed it, and GELU built on it against the
// exact formulas in Double.

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
    #expect(vexp(Float8(repeating: -.infinity))[0] == 0)
    #expect(vexp(Float8(repeating: 0))[0] == 1)
    #expect(vexp(Float8(repeating: .nan))[0].isNaN)
  }

  // The forward keeps gelu'(x) for the backward; the grid runs through the lower tail, where Phi(x)
  // comes from the tail formula times phi's exp and is far below float's epsilon, and reaches where
  // phi(x) underflows.
  @Test func geluAndItsDerivativeMatchTheExactFormulas() {
    let xs = stride(from: -16.0, through: 12.0, by: 0.0007).map { Float($0) }
    let N = xs.count
    let inp = FloatBuffer(count: N)
    let out = FloatBuffer(count: N)
    let slope = FloatBuffer(count: N)
    let grad = FloatBuffer(count: N)
    for i in 0..<N { inp.pointer[i] = xs[i]; grad.pointer[i] = 1 }
    geluForward(out.pointer, slope: slope.pointer, inp.pointer, N, .serial)
    geluBackward(grad.pointer, slope: slope.pointer, grad.pointer, N, .serial)
    var (worstValue, worstDerivative) = (0.0, 0.0)
    for (i, x) in xs.enumerated() {
      let x = Double(x)
      let phi = 0.5 * (1 + Foundation.erf(x / 2.0.squareRoot()))
      let density = Foundation.exp(-0.5 * x * x) / (2 * Double.pi).squareRoot()
      worstValue = max(worstValue, abs(Double(out.pointer[i]) - x * phi) / max(1, abs(x)))
      worstDerivative = max(worstDerivative, abs(Double(grad.pointer[i]) - (phi + x * density)))
    }
    #expect(worstValue < 5e-7, "gelu: worst error \(worstValue) (relative above |x| = 1)")
    #expect(worstDerivative < 5e-7, "gelu': worst absolute error \(worstDerivative)")
  }
}
