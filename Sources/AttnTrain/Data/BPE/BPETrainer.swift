// Learning a byte-level BPE from text, as Hugging Face's BpeTrainer does with a ByteLevel
// pre-tokenizer: the text is cut into pieces (GPT2PreTokenizer), each distinct piece is a word
// weighted by how often it occurs, every word starts as its bytes, and the most frequent adjacent pair
// (ties: the smaller pair of ids) becomes a new token, merged in every word, until the vocabulary
// reaches its size. Pair counts are updated only in the words a merge touches, and the most frequent
// pair comes from a heap whose stale entries are skipped, so a merge costs what it changes.

extension BytePairEncoding {
  /// A vocabulary of `vocabularySize` ids: the 256 bytes, the merges learned from `texts`, then
  /// <|endoftext|> and `specialTokens` (such as "[MASK]") in the order given. Stops early, with a
  /// smaller vocabulary, when no pair occurs twice.
  public static func train(on texts: [String], vocabularySize: Int, specialTokens: [String] = []) throws -> BytePairEncoding {
    let specials = ["<|endoftext|>"] + specialTokens
    precondition(vocabularySize >= 256 + specials.count, "256 byte tokens and the special tokens at least")
    var corpus = WordCounts()
    for var text in texts { text.withUTF8 { corpus.add($0) } }
    var words = corpus.words
    let counts = corpus.counts

    var pairCounts: [UInt64: Int] = [:]
    var pairWords: [UInt64: [Int32]] = [:]
    for (w, word) in words.enumerated() where word.count > 1 {
      for k in 0..<(word.count - 1) {
        let pair = key(word[k], word[k + 1])
        pairCounts[pair, default: 0] += counts[w]
        pairWords[pair, default: []].append(Int32(w))
      }
    }
    var heap = PairHeap()
    for (pair, count) in pairCounts { heap.push(count, pair) }

    var tokenBytes = (0..<256).map { [UInt8($0)] }
    var merges: [(Int32, Int32)] = []
    var visited = [Int32](repeating: -1, count: words.count)
    while tokenBytes.count < vocabularySize - specials.count, let (count, pair) = heap.popMax(current: pairCounts) {
      guard count >= 2 else { break }
      let (left, right) = (Int32(truncatingIfNeeded: pair >> 32), Int32(truncatingIfNeeded: pair))
      let merged = Int32(tokenBytes.count)
      tokenBytes.append(tokenBytes[Int(left)] + tokenBytes[Int(right)])
      merges.append((left, right))
      var changed: Set<UInt64> = []
      for w in pairWords[pair] ?? [] where visited[Int(w)] != merged {
        visited[Int(w)] = merged
        let old = words[Int(w)]
        var new: [Int32] = []
        new.reserveCapacity(old.count)
        var k = 0
        while k < old.count {
          if k + 1 < old.count && old[k] == left && old[k + 1] == right {
            new.append(merged)
            k += 2
          } else {
            new.append(old[k])
            k += 1
          }
        }
        guard new.count != old.count else { continue }
        let weight = counts[Int(w)]
        for k in 0..<(old.count - 1) {
          let p = key(old[k], old[k + 1])
          pairCounts[p, default: 0] -= weight
          changed.insert(p)
        }
        for k in 0..<max(0, new.count - 1) {
          let p = key(new[k], new[k + 1])
          pairCounts[p, default: 0] += weight
          pairWords[p, default: []].append(w)
          changed.insert(p)
        }
        words[Int(w)] = new
      }
      pairWords[pair] = nil
      for p in changed {
        let c = pairCounts[p] ?? 0
        if c <= 0 { pairCounts[p] = nil } else { heap.push(c, p) }
      }
    }
    let ids = specials.indices.map { Int32(tokenBytes.count + $0) }
    return try BytePairEncoding(
      tokenBytes: tokenBytes + specials.map { Array($0.utf8) }, merges: merges,
      specialTokens: zip(specials, ids).map { (text: $0, id: $1) })
  }

  private static func key(_ left: Int32, _ right: Int32) -> UInt64 { UInt64(UInt32(left)) << 32 | UInt64(UInt32(right)) }
}

/// The distinct pieces of a text, as byte-token sequences, with how often each occurs.
private struct WordCounts {
  private var index: [[UInt8]: Int] = [:]
  private(set) var words: [[Int32]] = []
  private(set) var counts: [Int] = []

  mutating func add(_ text: UnsafeBufferPointer<UInt8>) {
    GPT2PreTokenizer.forEachPiece(text) { range in
      let piece = Array(text[range])
      if let w = index[piece] {
        counts[w] += 1
      } else {
        index[piece] = words.count
        words.append(piece.map { Int32($0) })
        counts.append(1)
      }
    }
  }
}

/// A max-heap of (count, pair): the highest count first, the smaller pair among equal counts.
/// Entries go stale when a count changes; popMax skips those whose count is no longer current.
private struct PairHeap {
  private var entries: [(count: Int, pair: UInt64)] = []

  private static func before(_ a: (count: Int, pair: UInt64), _ b: (count: Int, pair: UInt64)) -> Bool {
    a.count != b.count ? a.count > b.count : a.pair < b.pair
  }

  mutating func push(_ count: Int, _ pair: UInt64) {
    entries.append((count, pair))
    var i = entries.count - 1
    while i > 0 {
      let parent = (i - 1) / 2
      guard Self.before(entries[i], entries[parent]) else { break }
      entries.swapAt(i, parent)
      i = parent
    }
  }

  mutating func popMax(current: [UInt64: Int]) -> (Int, UInt64)? {
    while let top = entries.first {
      let last = entries.removeLast()
      if !entries.isEmpty {
        entries[0] = last
        var i = 0
        while true {
          let (l, r) = (2 * i + 1, 2 * i + 2)
          var best = i
          if l < entries.count && Self.before(entries[l], entries[best]) { best = l }
          if r < entries.count && Self.before(entries[r], entries[best]) { best = r }
          guard best != i else { break }
          entries.swapAt(i, best)
          i = best
        }
      }
      if current[top.pair] == top.count { return (top.count, top.pair) }
    }
    return nil
  }
}
