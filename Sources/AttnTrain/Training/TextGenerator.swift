// Autoregressive sampling: feed the last block_size tokens, scale the final position's logits by
// 1/temperature, keep the top k, draw from the softmax with a key (seed, token index) so the same
// command prints the same text. Temperature 0 picks the most likely token.

import AttnCore
import Foundation

public struct TextGenerator {
  public let model: GPT
  public let tokenizer: Tokenizer

  public init(model: GPT, tokenizer: Tokenizer) {
    self.model = model
    self.tokenizer = tokenizer
  }

  public func generate(
    prompt: [Int32], count: Int, temperature: Double, topK: Int?, seed: UInt64,
    emit: (String) -> Void
  ) {
    let V = model.shape.vocabSize
    let blockSize = model.shape.blockSize
    var context = prompt
    let key = RandomKey(seed: seed, purpose: .sampling)
    var probabilities = [Double](repeating: 0, count: V)
    var order = Array(0..<V)
    for index in 0..<count {
      let window = Array(context.suffix(blockSize))
      model.forward(tokens: window, targets: nil, B: 1, T: window.count)
      let logits = model.logits + (window.count - 1) * V
      let next: Int
      if temperature == 0 {
        next = (0..<V).max { logits[$0] < logits[$1] }!
      } else {
        order.sort { logits[$0] > logits[$1] }
        let kept = min(topK ?? V, V)
        let top = Double(logits[order[0]])
        var total = 0.0
        for rank in 0..<V {
          let id = order[rank]
          probabilities[id] = rank < kept ? exp((Double(logits[id]) - top) / temperature) : 0
          total += probabilities[id]
        }
        var draw = Double(key.uniform(index)) * total
        var chosen = order[0]
        for rank in 0..<kept {
          draw -= probabilities[order[rank]]
          if draw < 0 {
            chosen = order[rank]
            break
          }
        }
        next = chosen
      }
      context.append(Int32(next))
      emit(tokenizer.decode([Int32(next)]))
    }
  }
}
