// BERT's masked-token corruption for task.kind "masked_language_model": in each window of T tokens,
// P = round(mask_probability x T) distinct positions are drawn; each becomes [MASK] 80% of the time,
// a random id 10%, stays 10%; the targets are the original ids there and -1 everywhere else (a
// position the model does not predict). A fixed P per window (as BERT's max_predictions) makes a
// step's loss a mean over a known count, so no rank has to learn how many the others predicted. The
// draws are a pure function of the key, (seed, step, micro-step, global sample) in training and
// (seed, window) on the dev set, so resume and any rank count hide the same tokens.

import AttnCore
import AttnFormats

public struct TokenMasking: Sendable {
  public static let maskToken = "[MASK]"
  public let maskID: Int32
  /// Positions predicted in each window.
  public let predictedPerSequence: Int
  /// Random replacements are drawn from the tokenizer's ids 0..<this.
  public let vocabularySize: Int
  private let seed: UInt64

  /// The masking of `config`'s task, nil unless it is a masked language model; throws when the
  /// tokenizer has no [MASK] token.
  public init?(_ config: Config, tokenizer: Tokenizer) throws {
    guard config.task.kind == .maskedLanguageModel else { return nil }
    guard let id = tokenizer.specialID(Self.maskToken) else {
      throw InputError(
        file: config.sourcePath, field: "data.tokenizer",
        problem: "a masked language model hides tokens behind a \(Self.maskToken) token, and this \(tokenizer.kind.rawValue) tokenizer has none",
        hint: #"learn a BPE with one: {"kind": "bpe", "vocab_size": N, "special_tokens": ["[MASK]"]}, or use a tokenizer.json that has it"#)
    }
    maskID = id
    predictedPerSequence = config.maskedPerSequence
    vocabularySize = tokenizer.vocabSize
    seed = config.training.seed
  }

  /// The key of a training window.
  public func key(step: Int, microStep: Int, globalSample: Int) -> RandomKey {
    RandomKey(seed: seed, purpose: .masking).then(step).then(microStep).then(globalSample)
  }

  /// The key of dev window `window` (the same at every evaluation; steps are never negative).
  public func key(devWindow window: Int) -> RandomKey {
    RandomKey(seed: seed, purpose: .masking).then(-1).then(window)
  }

  /// Masks each of `count` windows of tokens[count, T] (targets[count, T] written) with the key
  /// `key(row)` gives it. `positions` is scratch for T ids.
  public func apply(
    rows count: Int, tokens: UnsafeMutablePointer<Int32>, targets: UnsafeMutablePointer<Int32>, T: Int,
    positions: UnsafeMutablePointer<Int32>, key: (Int) -> RandomKey
  ) {
    for row in 0..<count {
      apply(tokens: tokens + row * T, targets: targets + row * T, T: T, key: key(row), positions: positions)
    }
  }

  /// Corrupts tokens[T] in place and writes targets[T]. `positions` is scratch for T ids.
  public func apply(
    tokens: UnsafeMutablePointer<Int32>, targets: UnsafeMutablePointer<Int32>, T: Int, key: RandomKey,
    positions: UnsafeMutablePointer<Int32>
  ) {
    targets.update(repeating: -1, count: T)
    for t in 0..<T { positions[t] = Int32(t) }
    // The first P of a partial Fisher-Yates shuffle are P distinct positions, each set equally likely.
    let (placement, choice, replacement) = (key.then(0), key.then(1), key.then(2))
    for j in 0..<predictedPerSequence {
      let pick = j + placement.integer(j, below: T - j)
      positions.swapAt(j, pick)
      let t = Int(positions[j])
      targets[t] = tokens[t]
      let u = choice.uniform(j)
      if u < 0.8 {
        tokens[t] = maskID
      } else if u < 0.9 {
        tokens[t] = Int32(replacement.integer(j, below: vocabularySize))
      }
    }
  }
}

extension UnsafeMutablePointer {
  fileprivate func swapAt(_ i: Int, _ j: Int) {
    let x = self[i]
    self[i] = self[j]
    self[j] = x
  }
}
