// Inverted dropout whose mask is recomputed, never stored: element i of sample b at a given site is
// kept when uniform(key(step, global sample, layer, site), i) >= p. Forward and backward draw the
// same mask, and a sample's mask does not depend on the rank that processes it.

public enum DropoutSite: Int {
  case embedding = 0
  case attentionWeights = 1
  case attentionOutput = 2
  case mlpOutput = 3
  case classifierHidden = 4
}

/// Where a step's dropout comes from: the step's key and the global index of this process's sample 0.
public struct DropoutContext: Sendable {
  public var probability: Float
  public var stepKey: RandomKey
  public var firstGlobalSample: Int

  public init(probability: Float, stepKey: RandomKey, firstGlobalSample: Int) {
    self.probability = probability
    self.stepKey = stepKey
    self.firstGlobalSample = firstGlobalSample
  }

  /// No dropout: evaluation, sampling, or a model configured with p = 0.
  public static let off = DropoutContext(
    probability: 0, stepKey: RandomKey(seed: 0, purpose: .dropout), firstGlobalSample: 0)

  public var isActive: Bool { probability > 0 }

  public func key(sample b: Int, layer: Int, site: DropoutSite) -> RandomKey {
    stepKey.then(firstGlobalSample + b).then(layer).then(site.rawValue)
  }
}

/// x[B, N] *= mask / (1 - p), in place. The backward is the same call on the gradient.
func dropoutInPlace(
  _ x: UnsafeMutablePointer<Float>, _ B: Int, _ N: Int,
  _ context: DropoutContext, layer: Int, site: DropoutSite
) {
  guard context.isActive else { return }
  let p = context.probability
  let scale = 1 / (1 - p)
  for b in 0..<B {
    let key = context.key(sample: b, layer: layer, site: site)
    let row = x + b * N
    for i in 0..<N { row[i] = key.uniform(i) >= p ? row[i] * scale : 0 }
  }
}
