// Autoregressive sampling: feed the last block_size tokens, scale the final position's logits by
// 1/temperature, keep the top k, draw from the softmax with a key (seed, token index) so the same
// command prints the same text. Temperature 0 picks the most likely token. A token may end inside a
// UTF-8 character (byte and BPE tokenizers), so text is emitted a whole character at a time.

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
    var characters = UTF8Stream()
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
      let text = characters.append(tokenizer.decodeBytes([Int32(next)]))
      if !text.isEmpty { emit(text) }
    }
    let rest = characters.finish()
    if !rest.isEmpty { emit(rest) }
  }
}

/// Whole characters from bytes that may stop inside one: `append` returns what is complete and keeps
/// an unfinished sequence (at most 3 bytes) for the next call; `finish` gives up on it.
struct UTF8Stream {
  private var pending: [UInt8] = []

  mutating func append(_ bytes: [UInt8]) -> String {
    pending += bytes
    let unfinished = Self.unfinishedTail(pending)
    let ready = String(decoding: pending[..<(pending.count - unfinished)], as: UTF8.self)
    pending.removeFirst(pending.count - unfinished)
    return ready
  }

  /// What is left, invalid as it is, as U+FFFD.
  mutating func finish() -> String {
    defer { pending = [] }
    return String(decoding: pending, as: UTF8.self)
  }

  /// How many bytes at the end start a character that needs more bytes than follow it.
  static func unfinishedTail(_ bytes: [UInt8]) -> Int {
    for back in 1...min(3, bytes.count) {
      let byte = bytes[bytes.count - back]
      guard byte & 0xC0 == 0x80 else {
        let length = byte >= 0xF0 ? 4 : byte >= 0xE0 ? 3 : byte >= 0xC0 ? 2 : 1
        return length > back ? back : 0
      }
    }
    return 0
  }
}
