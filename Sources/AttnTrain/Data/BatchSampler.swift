// Where training sequences start. The training batch of a step is a pure function of (seed, step,
// micro-step, global sample), so no loader state exists: a resumed run and any rank count draw the
// same sequences.

import AttnCore

/// Where training sequences start: sample g of micro-step m of step t begins at a position drawn
/// from the key (seed, batch, t, m, g), so it does not depend on ranks or on what ran before.
public struct BatchSampler: Sendable {
  public let seed: UInt64
  public let sequenceLength: Int
  public let tokenCount: Int

  public init(seed: UInt64, sequenceLength: Int, tokenCount: Int) {
    self.seed = seed
    self.sequenceLength = sequenceLength
    self.tokenCount = tokenCount
  }

  public func start(step: Int, microStep: Int, globalSample: Int) -> Int {
    let key = RandomKey(seed: seed, purpose: .batch).then(step).then(microStep)
    return key.integer(globalSample, below: tokenCount - sequenceLength)
  }

  /// Fills tokens/targets [count, T] for global samples first..<first+count; throws for an id the
  /// vocabulary does not have.
  public func fill(
    tokens: UnsafeMutablePointer<Int32>, targets: UnsafeMutablePointer<Int32>, from stream: TokenStream,
    vocabularySize: Int, step: Int, microStep: Int, firstSample: Int, count: Int
  ) throws {
    let T = sequenceLength
    for b in 0..<count {
      let s = start(step: step, microStep: microStep, globalSample: firstSample + b)
      try stream.copyWindow(s, T, inputs: tokens + b * T, targets: targets + b * T, vocabularySize: vocabularySize)
    }
  }
}
