// Counter-based randomness: every random number is a pure function of a key built from
// (seed, purpose, step, sample, layer, ...) and an element index. No generator state exists, so
// nothing needs to be saved in a checkpoint, a resumed run draws the same numbers as an
// uninterrupted one, and a sample's dropout mask does not depend on which rank processes it.

#if canImport(Glibc)
  import Glibc
#else
  import Darwin
#endif

public enum RandomPurpose: UInt64 {
  case initialization = 1
  case batch = 2
  case dropout = 3
  case sampling = 4
  /// Which tokens a masked language model hides, and what it puts in their place.
  case masking = 5
}

/// SplitMix64's finaliser: a bijective 64-bit mixer with good avalanche, cheap enough per element.
@inline(__always)
public func mix64(_ x: UInt64) -> UInt64 {
  var z = x &+ 0x9E37_79B9_7F4A_7C15
  z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
  z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
  return z ^ (z >> 31)
}

public struct RandomKey: Sendable, Equatable {
  public let value: UInt64

  public init(seed: UInt64, purpose: RandomPurpose) {
    value = mix64(mix64(seed) ^ purpose.rawValue)
  }

  private init(value: UInt64) { self.value = value }

  /// Derives a child key; `then(a).then(b)` differs from `then(b).then(a)`.
  public func then(_ component: Int) -> RandomKey {
    RandomKey(value: mix64(value ^ mix64(UInt64(bitPattern: Int64(component)))))
  }

  /// The i-th 64 random bits of this key's stream.
  @inline(__always)
  public func bits(_ index: Int) -> UInt64 {
    mix64(value &+ UInt64(bitPattern: Int64(index)) &* 0xD1B5_4A32_D192_ED03)
  }

  /// Uniform in [0, 1) with 24 bits of precision.
  @inline(__always)
  public func uniform(_ index: Int) -> Float {
    Float(bits(index) >> 40) * (1.0 / 16_777_216.0)
  }

  /// Uniform integer in 0..<bound (bound > 0); the modulo bias is below 2^-32 for bounds used here.
  @inline(__always)
  public func integer(_ index: Int, below bound: Int) -> Int {
    Int(bits(index) % UInt64(bound))
  }

  /// Standard normal by Box-Muller on two independent uniforms.
  public func normal(_ index: Int) -> Float {
    let u1 = Double(bits(2 * index) >> 11) * 0x1p-53
    let u2 = Double(bits(2 * index + 1) >> 11) * 0x1p-53
    let radius = (-2 * log(1 - u1)).squareRoot()
    return Float(radius * cos(2 * Double.pi * u2))
  }
}

