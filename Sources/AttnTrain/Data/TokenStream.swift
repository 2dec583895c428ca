// A split's token ids as one stream, however they are stored: in memory, or as memory-mapped
// shards read in place (a corpus larger than memory), each window's pages given back once copied.
// Copies may span shards. Every id copied out is
// checked against the vocabulary, so a damaged shard stops the run with its name instead of
// indexing past the embedding table.

import AttnFormats

public final class TokenStream: @unchecked Sendable {
  /// A run of ids: `count` of them from global index `start`, `width` bytes each at `base`.
  private struct Segment {
    let start: Int
    let count: Int
    let base: UnsafeRawPointer
    let width: Int
    let name: String
    /// The mapped shard, whose pages a copy gives back (nil in memory).
    let shard: MappedTokenShard?
  }

  public let count: Int
  private let segments: [Segment]
  /// What keeps the memory alive: the shards' mappings, or the copy of in-memory ids.
  private let owners: [AnyObject]
  private let ownedIDs: UnsafeMutableBufferPointer<Int32>?

  /// Ids held in memory (copied).
  public init(_ ids: [Int32], name: String = "tokens") {
    let copy = UnsafeMutableBufferPointer<Int32>.allocate(capacity: max(ids.count, 1))
    _ = copy.initialize(from: ids)
    ownedIDs = copy
    owners = []
    count = ids.count
    segments = [
      Segment(start: 0, count: ids.count, base: UnsafeRawPointer(copy.baseAddress!), width: 4, name: name, shard: nil)
    ]
  }

  /// The shards' ids, in order.
  public init(shards: [MappedTokenShard]) {
    var start = 0
    var segments: [Segment] = []
    for shard in shards where shard.count > 0 {
      segments.append(
        Segment(start: start, count: shard.count, base: shard.ids, width: shard.width, name: shard.path, shard: shard))
      start += shard.count
    }
    self.segments = segments
    owners = shards
    ownedIDs = nil
    count = start
  }

  deinit { ownedIDs?.deallocate() }

  /// ids[position ..< position + n] into `destination` as Int32, each checked to be below
  /// `vocabularySize`. Allocates nothing (the training step calls it).
  public func copy(
    _ position: Int, _ n: Int, into destination: UnsafeMutablePointer<Int32>, vocabularySize: Int, release: Bool = true
  ) throws {
    precondition(position >= 0 && n >= 0 && position + n <= count, "copy \(position)..<\(position + n) of \(count) ids")
    var done = 0
    var s = segmentIndex(containing: position)
    while done < n {
      let segment = segments[s]
      let offset = position + done - segment.start
      let take = min(n - done, segment.count - offset)
      let out = destination + done
      // Unsigned, so that an id past Int32.max (a damaged 4-byte shard) counts as too large.
      var largest: UInt32 = 0
      if segment.width == 4 {
        for i in 0..<take {
          let id = UInt32(littleEndian: segment.base.loadUnaligned(fromByteOffset: 4 * (offset + i), as: UInt32.self))
          out[i] = Int32(bitPattern: id)
          largest = max(largest, id)
        }
      } else {
        for i in 0..<take {
          let id = UInt16(littleEndian: segment.base.loadUnaligned(fromByteOffset: 2 * (offset + i), as: UInt16.self))
          out[i] = Int32(id)
          largest = max(largest, UInt32(id))
        }
      }
      if release { segment.shard?.release(offset..<(offset + take)) }
      if largest >= UInt32(vocabularySize) {
        let bad = (0..<take).first { out[$0] < 0 || out[$0] >= vocabularySize }!
        throw TokenStreamError(
          file: segment.name, index: offset + bad, id: UInt32(bitPattern: out[bad]), vocabularySize: vocabularySize)
      }
      done += take
      s += 1
    }
  }

  /// A training window in one pass: ids[position ..< position + n] into `inputs` and the next n
  /// (shifted by one) into `targets`, each checked against `vocabularySize`. One read of the window,
  /// and one release of its pages, instead of two copies.
  public func copyWindow(
    _ position: Int, _ n: Int, inputs: UnsafeMutablePointer<Int32>, targets: UnsafeMutablePointer<Int32>,
    vocabularySize: Int
  ) throws {
    precondition(n >= 1 && position >= 0 && position + n + 1 <= count, "window \(position)..<\(position + n + 1) of \(count) ids")
    let segment = segments[segmentIndex(containing: position)]
    guard position + n + 1 <= segment.start + segment.count else {
      // Across a shard boundary: the general copy, twice.
      try copy(position, n, into: inputs, vocabularySize: vocabularySize)
      try copy(position + 1, n, into: targets, vocabularySize: vocabularySize)
      return
    }
    let offset = position - segment.start
    try copy(position, n, into: inputs, vocabularySize: vocabularySize, release: false)
    targets.update(from: inputs + 1, count: n - 1)
    try copy(position + n, 1, into: targets + n - 1, vocabularySize: vocabularySize, release: false)
    segment.shard?.release(offset..<(offset + n + 1))
  }

  /// Every id, in memory: for tests and small splits.
  public func array() -> [Int32] {
    var ids = [Int32](repeating: 0, count: count)
    ids.withUnsafeMutableBufferPointer { buffer in
      if count > 0 { try! copy(0, count, into: buffer.baseAddress!, vocabularySize: Int(Int32.max)) }
    }
    return ids
  }

  private func segmentIndex(containing position: Int) -> Int {
    var (low, high) = (0, segments.count - 1)
    while low < high {
      let middle = (low + high + 1) / 2
      if segments[middle].start <= position { low = middle } else { high = middle - 1 }
    }
    return low
  }
}

/// An id a vocabulary does not have: a damaged shard, or one made with another tokenizer.
public struct TokenStreamError: Error, CustomStringConvertible {
  public let file: String
  public let index: Int
  public let id: UInt32
  public let vocabularySize: Int

  public var description: String {
    "\(file): token \(index) is id \(id), beyond the tokenizer's \(vocabularySize) ids (a damaged shard, or one made with another tokenizer)"
  }
}
