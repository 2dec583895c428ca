// Byte-level BPE, as GPT-2 defines it and tiktoken and Hugging Face `tokenizers` implement it: the
// text is cut into pieces (GPT2PreTokenizer), each piece starts as one token per byte, and the
// adjacent pair whose merge ranks first is merged, leftmost first among equals, until no listed
// merge applies. A merge joins two tokens into the token of their concatenated bytes. Special
// tokens (<|endoftext|>) are never produced from text: a data pipeline inserts them itself.

import AttnFormats

public final class BytePairEncoding: Equatable, @unchecked Sendable {
  /// The bytes of each token id; a special token's are its text's UTF-8.
  let tokenBytes: [[UInt8]]
  /// The token of each single byte.
  let byteTokens: [Int32]
  /// (left << 32 | right) -> the merge's priority (0 first) and the token it makes.
  let merges: [UInt64: Merge]
  /// Special tokens by text, in id order.
  let specialTokens: [(text: String, id: Int32)]

  struct Merge {
    let rank: Int32
    let result: Int32
  }

  /// `tokenBytes[id]` for ids 0..<count, `merges` in priority order as pairs of ids; a special
  /// token's bytes are its text. Throws `BPEModelError` for a vocabulary that cannot encode every
  /// byte or a merge whose result is not a token.
  init(tokenBytes: [[UInt8]], merges pairs: [(Int32, Int32)], specialTokens: [(text: String, id: Int32)]) throws {
    let specialIDs = Set(specialTokens.map(\.id))
    var idOfBytes: [[UInt8]: Int32] = [:]
    for (id, bytes) in tokenBytes.enumerated() where !specialIDs.contains(Int32(id)) {
      guard !bytes.isEmpty else { throw BPEModelError("token \(id) is empty") }
      guard idOfBytes.updateValue(Int32(id), forKey: bytes) == nil else {
        throw BPEModelError("tokens \(idOfBytes[bytes]!) and \(id) are the same bytes \(ByteLevelAlphabet.encode(bytes).debugDescription)")
      }
    }
    var byteTokens = [Int32](repeating: -1, count: 256)
    for byte in 0..<256 {
      guard let id = idOfBytes[[UInt8(byte)]] else {
        throw BPEModelError("byte 0x\(String(byte, radix: 16, uppercase: true)) has no token, so some text could not be encoded")
      }
      byteTokens[byte] = id
    }
    var merges: [UInt64: Merge] = [:]
    merges.reserveCapacity(pairs.count)
    for (rank, (left, right)) in pairs.enumerated() {
      guard tokenBytes.indices.contains(Int(left)), tokenBytes.indices.contains(Int(right)) else {
        throw BPEModelError("merge \(rank) names a token id outside the vocabulary")
      }
      let joined = tokenBytes[Int(left)] + tokenBytes[Int(right)]
      guard let result = idOfBytes[joined] else {
        throw BPEModelError("merge \(rank) makes \(ByteLevelAlphabet.encode(joined).debugDescription), which is not in the vocabulary")
      }
      let key = UInt64(UInt32(left)) << 32 | UInt64(UInt32(right))
      if merges[key] == nil { merges[key] = Merge(rank: Int32(rank), result: result) }
    }
    self.tokenBytes = tokenBytes
    self.byteTokens = byteTokens
    self.merges = merges
    self.specialTokens = specialTokens.sorted { $0.id < $1.id }
  }

  public var vocabSize: Int { tokenBytes.count }

  /// The same tokens, merges and special tokens.
  public static func == (a: BytePairEncoding, b: BytePairEncoding) -> Bool {
    a === b
      || (a.tokenBytes == b.tokenBytes && a.merges.mapValues(\.rank) == b.merges.mapValues(\.rank)
        && a.specialTokens.elementsEqual(b.specialTokens) { $0.text == $1.text && $0.id == $1.id })
  }

  /// The id of <|endoftext|>, the document separator, if the vocabulary has it.
  public var endOfText: Int32? { specialTokens.first { $0.text == "<|endoftext|>" }?.id }

  // MARK: - Encoding

  /// Appends the ids of `text` (valid UTF-8) to `ids`. Special tokens' texts are encoded as text.
  public func encode(_ text: UnsafeBufferPointer<UInt8>, into ids: inout [Int32]) {
    var cache = PieceCache()
    var parts: [Int32] = []
    var ranks: [Int32] = []
    GPT2PreTokenizer.forEachPiece(text) { range in
      let piece = UnsafeBufferPointer(rebasing: text[range])
      if piece.count == 1 {
        ids.append(byteTokens[Int(piece[0])])
        return
      }
      if let known = cache.lookup(piece) {
        ids.append(contentsOf: known)
        return
      }
      mergePiece(piece, &parts, &ranks)
      ids.append(contentsOf: parts)
      cache.store(piece, parts)
    }
  }

  public func encode(_ text: String) -> [Int32] {
    var ids: [Int32] = []
    var text = text
    text.withUTF8 { encode($0, into: &ids) }
    return ids
  }

  /// Leaves the tokens of one piece in `parts`. `ranks[k]` is the rank of merging parts k and k+1
  /// (Int32.max when none applies), kept up to date around each merge so each round is one scan.
  private func mergePiece(_ piece: UnsafeBufferPointer<UInt8>, _ parts: inout [Int32], _ ranks: inout [Int32]) {
    parts.removeAll(keepingCapacity: true)
    for byte in piece { parts.append(byteTokens[Int(byte)]) }
    ranks.removeAll(keepingCapacity: true)
    for k in 0..<(parts.count - 1) { ranks.append(rank(parts[k], parts[k + 1])) }
    while true {
      var best = Int32.max
      var at = -1
      for k in 0..<ranks.count where ranks[k] < best {
        best = ranks[k]
        at = k
      }
      guard at >= 0 else { return }
      parts[at] = merges[key(parts[at], parts[at + 1])]!.result
      parts.remove(at: at + 1)
      ranks.remove(at: at)
      if at < ranks.count { ranks[at] = rank(parts[at], parts[at + 1]) }
      if at > 0 { ranks[at - 1] = rank(parts[at - 1], parts[at]) }
    }
  }

  @inline(__always) private func key(_ left: Int32, _ right: Int32) -> UInt64 {
    UInt64(UInt32(left)) << 32 | UInt64(UInt32(right))
  }

  @inline(__always) private func rank(_ left: Int32, _ right: Int32) -> Int32 {
    merges[key(left, right)]?.rank ?? Int32.max
  }

  // MARK: - Decoding

  /// The bytes the ids stand for; an id outside the vocabulary is skipped.
  public func decode(_ ids: some Sequence<Int32>) -> [UInt8] {
    var bytes: [UInt8] = []
    for id in ids where tokenBytes.indices.contains(Int(id)) { bytes += tokenBytes[Int(id)] }
    return bytes
  }
}

/// What is wrong with a vocabulary or its merges; the reader adds the file.
struct BPEModelError: Error, CustomStringConvertible {
  let description: String
  init(_ description: String) { self.description = description }
}

/// The ids of pieces seen before: text repeats its words, and merging a word costs far more than
/// looking it up. Bounded, so a corpus of endless distinct pieces cannot grow it without limit.
private struct PieceCache {
  private var entries: [[UInt8]: [Int32]] = [:]
  private static let capacity = 1 << 16

  func lookup(_ piece: UnsafeBufferPointer<UInt8>) -> [Int32]? { entries[Array(piece)] }

  mutating func store(_ piece: UnsafeBufferPointer<UInt8>, _ ids: [Int32]) {
    if entries.count >= Self.capacity { entries.removeAll(keepingCapacity: true) }
    entries[Array(piece)] = ids
  }
}
