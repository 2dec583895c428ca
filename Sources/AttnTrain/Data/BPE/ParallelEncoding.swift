// Encoding a large text on several threads with the ids one thread would give: the text is cut only
// where GPT-2's pre-tokenizer starts a new piece whatever follows, at a space between two
// non-whitespace characters ("x y": the run ending at x ends there, and " y" begins a piece alone),
// so every part encodes as it would inside the whole.

import Foundation

extension BytePairEncoding {
  /// The ids of `text` (valid UTF-8), encoded in up to `threads` parts at once.
  public func encode(_ text: UnsafeBufferPointer<UInt8>, threads: Int) -> [Int32] {
    let cuts = Self.cutPoints(text, parts: threads)
    guard cuts.count > 2 else {
      var ids: [Int32] = []
      encode(text, into: &ids)
      return ids
    }
    let parts = PartResults(count: cuts.count - 1)
    nonisolated(unsafe) let text = text  // read-only while the threads run
    DispatchQueue.concurrentPerform(iterations: cuts.count - 1) { k in
      var ids: [Int32] = []
      encode(UnsafeBufferPointer(rebasing: text[cuts[k]..<cuts[k + 1]]), into: &ids)
      parts.set(k, ids)
    }
    return parts.joined()
  }

  /// 0, the safe cuts nearest each k/parts of the text, and text.count; fewer where none is found.
  static func cutPoints(_ text: UnsafeBufferPointer<UInt8>, parts: Int) -> [Int] {
    var cuts = [0]
    guard parts > 1, text.count > 1 << 16 else { return cuts + [text.count] }
    for k in 1..<parts {
      var i = max(cuts.last! + 1, text.count * k / parts)
      while i + 1 < text.count && !isSafeCut(text, i) { i += 1 }
      if i + 1 < text.count { cuts.append(i) }
    }
    return cuts + [text.count]
  }

  /// A space with a non-whitespace character on either side. Whitespace bytes are ASCII or start
  /// a multi-byte sequence, so the byte before a cut is checked as the last byte of its character.
  private static func isSafeCut(_ text: UnsafeBufferPointer<UInt8>, _ i: Int) -> Bool {
    guard i > 0, text[i] == 0x20 else { return false }
    let before = text[i - 1]
    guard before > 0x20 && before < 0x7F else { return false }  // ASCII, printable, not a space
    return GPT2PreTokenizer.classify(text, i + 1).class != .whitespace
  }
}

/// Each part's ids, filled in by the threads.
private final class PartResults: @unchecked Sendable {
  private var parts: [[Int32]]
  private let lock = NSLock()

  init(count: Int) { parts = Array(repeating: [], count: count) }

  func set(_ k: Int, _ ids: [Int32]) { lock.withLock { parts[k] = ids } }

  func joined() -> [Int32] { lock.withLock { parts.flatMap { $0 } } }
}
