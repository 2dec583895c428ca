// A split read through token shards is the same stream as in memory: windows at every position,
// across shard boundaries too, and 2- and 4-byte ids; an id beyond the vocabulary is refused with
// its shard and place.

import AttnFormats
import Foundation
import Testing

@testable import AttnTrain

@Suite struct TokenStreamTests {
  /// Shards of `sizes` ids (width 2 or 4) whose id at global position i is `id(i)`.
  static func shards(_ sizes: [Int], width: Int, id: (Int) -> Int32) throws -> (TokenStream, [Int32], String) {
    let directory = NSTemporaryDirectory() + "attn-stream-\(UUID().uuidString.prefix(8))"
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    var all: [Int32] = []
    var mapped: [MappedTokenShard] = []
    for (n, size) in sizes.enumerated() {
      let ids = (all.count..<(all.count + size)).map(id)
      all += ids
      let path = "\(directory)/train-\(n).tokens"
      let writer = try TokenShardWriter(path: path, width: width, tokenizerSHA256: [UInt8](repeating: 1, count: 32))
      try ids.withUnsafeBufferPointer { try writer.append($0) }
      try writer.finish()
      mapped.append(try MappedTokenShard(path: path))
    }
    return (TokenStream(shards: mapped), all, directory)
  }

  @Test(arguments: [2, 4]) func windowsAtEveryPositionMatchTheIdsInMemory(width: Int) throws {
    let (stream, all, directory) = try Self.shards([7, 1, 0, 13, 9], width: width) { Int32(($0 * 37) % 1000) + (width == 4 ? 70_000 : 0) }
    defer { try? FileManager.default.removeItem(atPath: directory) }
    #expect(stream.count == all.count)
    #expect(stream.array() == all)
    for T in [1, 3, 8] {
      var inputs = [Int32](repeating: -1, count: T)
      var targets = [Int32](repeating: -1, count: T)
      for position in 0...(all.count - T - 1) {
        try inputs.withUnsafeMutableBufferPointer { i in
          try targets.withUnsafeMutableBufferPointer { t in
            try stream.copyWindow(position, T, inputs: i.baseAddress!, targets: t.baseAddress!, vocabularySize: 100_000)
          }
        }
        #expect(inputs == Array(all[position..<(position + T)]), "inputs at \(position), T \(T)")
        #expect(targets == Array(all[(position + 1)..<(position + T + 1)]), "targets at \(position), T \(T)")
      }
    }
  }

  @Test func anIdBeyondTheVocabularyNamesItsShardAndPlace() throws {
    let (stream, _, directory) = try Self.shards([10, 10], width: 2) { $0 == 14 ? 500 : 3 }
    defer { try? FileManager.default.removeItem(atPath: directory) }
    var buffer = [Int32](repeating: 0, count: 20)
    let error = try #require(throws: TokenStreamError.self) {
      try buffer.withUnsafeMutableBufferPointer { try stream.copy(0, 20, into: $0.baseAddress!, vocabularySize: 256) }
    }
    #expect(error.file.hasSuffix("train-1.tokens"))
    #expect(error.index == 4)
    #expect(error.id == 500)
  }
}
