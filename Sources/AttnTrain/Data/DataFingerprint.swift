// What a run trains on, in a few bytes: the tokenizer's SHA-256, and each split's size and a digest
// of its ids. Ranks compare theirs at start (a node with another copy of a file must not train on
// it: with another character set the ids even index past the embedding), and checkpoints record it,
// so a resume on changed data is refused with the difference named.
//
// A classifier's examples are hashed whole (they are in memory). A token stream, which may be far
// larger than memory, is hashed in 64 windows of 4096 ids spread evenly over it, plus its length: a
// changed copy almost always differs in length or in a window, and the cost stays the same for any
// corpus. A small stream (up to 256K ids) is hashed whole.

import AttnFormats
import Foundation

public struct DataFingerprint: Equatable, Sendable {
  public struct Split: Equatable, Sendable {
    public var count: Int
    /// The first 16 hex digits of the SHA-256.
    public var digest: String
  }

  public var tokenizer: String
  public var train: Split
  public var dev: Split
  /// "tokens" or "examples".
  public var unit: String

  public init(tokenizer: Tokenizer, train: Split, dev: Split, unit: String) {
    self.tokenizer = String(SHA256.hexDigest(of: Data(tokenizer.vocabularyJSON().utf8)).prefix(16))
    (self.train, self.dev, self.unit) = (train, dev, unit)
  }

  public init(_ data: TrainingData) throws {
    switch data {
    case .text(let text):
      self.init(
        tokenizer: text.tokenizer, train: try Self.split(text.train, text.tokenizer), dev: try Self.split(text.dev, text.tokenizer),
        unit: "tokens")
    case .labeled(let labeled):
      self.init(
        tokenizer: labeled.tokenizer, train: Split(count: labeled.train.count, digest: labeled.train.digest()),
        dev: Split(count: labeled.dev.count, digest: labeled.dev.digest()), unit: "examples")
    }
  }

  static let windows = 64
  static let window = 4096

  private static func split(_ stream: TokenStream, _ tokenizer: Tokenizer) throws -> Split {
    var hash = SHA256()
    var count = Int64(stream.count)
    withUnsafeBytes(of: &count) { hash.update($0) }
    let buffer = UnsafeMutablePointer<Int32>.allocate(capacity: window)
    defer { buffer.deallocate() }
    func add(_ start: Int, _ n: Int) throws {
      // Released once read: a sampled window of a mapped corpus must not stay resident.
      try stream.copy(start, n, into: buffer, vocabularySize: Int(Int32.max), release: true)
      hash.update(UnsafeRawBufferPointer(start: buffer, count: n * 4))
    }
    if stream.count <= windows * window {
      var start = 0
      while start < stream.count {
        try add(start, min(window, stream.count - start))
        start += window
      }
    } else {
      for w in 0..<windows { try add((stream.count - window) * w / (windows - 1), window) }
    }
    return Split(count: stream.count, digest: String(hash.hexDigest().prefix(16)))
  }

  /// "tokenizer 1a2b3c4d5e6f7a8b, train 1003854 tokens #0123456789abcdef, dev 111540 tokens #..."
  public var description: String {
    "tokenizer \(tokenizer), train \(train.count) \(unit) #\(train.digest), dev \(dev.count) \(unit) #\(dev.digest)"
  }

  /// What differs from `other`, in words; nil when nothing does.
  public func difference(from other: DataFingerprint) -> String? {
    var parts: [String] = []
    if tokenizer != other.tokenizer { parts.append("the tokenizer (vocab.json SHA-256 \(other.tokenizer)... then, \(tokenizer)... now)") }
    for (name, now, then) in [("train", train, other.train), ("dev", dev, other.dev)] where now != then {
      parts.append(
        now.count != then.count
          ? "the \(name) split (\(then.count) \(other.unit) then, \(now.count) \(unit) now)"
          : "the \(name) split's content (same \(now.count) \(unit), digest #\(then.digest) then, #\(now.digest) now)")
    }
    return parts.isEmpty ? nil : parts.joined(separator: "; ")
  }

  public var json: JSONValue {
    func split(_ s: Split) -> JSONValue {
      .object([(key: "count", value: JSONValue(integer: s.count)), (key: "digest", value: .string(s.digest))])
    }
    return .object([
      (key: "tokenizer_sha256", value: .string(tokenizer)), (key: "unit", value: .string(unit)),
      (key: "train", value: split(train)), (key: "dev", value: split(dev)),
    ])
  }

  public init(json: JSONObject) throws {
    func split(_ key: String) throws -> Split {
      let object = try json.object(key)
      return Split(count: try object.int("count"), digest: try object.string("digest"))
    }
    tokenizer = try json.string("tokenizer_sha256")
    unit = try json.string("unit")
    train = try split("train")
    dev = try split("dev")
  }
}
