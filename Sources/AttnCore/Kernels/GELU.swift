// The exact GELU, 0.5 x (1 + erf(x / sqrt 2)): PyTorch's nn.GELU() default, which nanoGPT uses.

#if canImport(Glibc)
  import Glibc
#else
  import Darwin
#endif

private let inverseSqrt2: Float = 0.707_106_781_186_547_5
private let inverseSqrt2Pi: Float = 0.398_942_280_401_432_7

// MARK: - Forward

/// out[N] = gelu(inp[N])
func geluForward(_ out: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>, _ N: Int) {
  for i in 0..<N {
    let x = inp[i]
    out[i] = 0.5 * x * (1 + erff(x * inverseSqrt2))
  }
}

// MARK: - Backward

/// dinp[N] = dout * gelu'(inp), where gelu'(x) = Phi(x) + x phi(x). May run in place (dinp == dout).
func geluBackward(
  _ dinp: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>, _ dout: UnsafePointer<Float>,
  _ N: Int
) {
  for i in 0..<N {
    let x = inp[i]
    let cdf = 0.5 * (1 + erff(x * inverseSqrt2))
    let pdf = inverseSqrt2Pi * expf(-0.5 * x * x)
    dinp[i] = dout[i] * (cdf + x * pdf)
  }
}
