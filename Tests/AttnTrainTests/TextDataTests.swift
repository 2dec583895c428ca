// The data pipeline against figures computed here from the files themselves: the char vocabulary
// and the 90/10 split of Tiny Shakespeare, the byte tokenizer on arbitrary bytes, training batches
// as a pure function of (seed, step, micro-step, sample), and dev windows that cover the split once
// and divide between ranks without gaps or overlaps.
import AttnCore
import Foundation
import Testing

@testable import AttnTrain

private let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
  .deletingLastPathComponent().deletingLastPathComponent()
private let tinyConfigPath = repository.appendingPathComponent("Configs/tiny.json").path
private let shakespearePath = repository.appendingPathComponent("data/tinyshakespeare/input.txt").path

/// A config for `dataPath` read as if from a file in a temporary directory.
private func config(dataPath: String, tokenizer: String = "char", blockSize: Int = 8) throws -> Config {
  let json = """
    {"model": {"n_layer": 1, "n_head": 1, "n_embd": 8, "block_size": \(blockSize)},
     "data": {"train_path": "\(dataPath)", "tokenizer": "\(tokenizer)"}}
    """
  return try Config.parse(json: Data(json.utf8), sourcePath: NSTemporaryDirectory() + "textdata.json")
}

/// A temporary file holding `bytes`.
private func temporaryFile(_ bytes: [UInt8]) throws -> String {
  let path = NSTemporaryDirectory() + "attn-train-textdata-\(UUID().uuidString.prefix(8)).bin"
  try Data(bytes).write(to: URL(fileURLWithPath: path))
  return path
}

@Suite struct TextDataTests {
  // MARK: - Tokenizers and split

  @Test func charVocabularyIsTheSortedUniqueCharactersOfTheText() throws {
    let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: shakespearePath)))
    // Tiny Shakespeare is ASCII, so its characters are its bytes; the expectation is built from the
    // raw bytes, not through any decoder of ours.
    #expect(bytes.allSatisfy { $0 < 128 })
    let expected = Set(bytes).sorted().map { UInt32($0) }
    #expect(expected.count == 65)  // the figure nanoGPT's shakespeare_char prints

    let data = try TextData.load(try Config.load(path: tinyConfigPath))
    #expect(data.tokenizer.kind == .char)
    #expect(data.tokenizer.vocabSize == expected.count)
    #expect(data.tokenizer.characters.map(\.value) == expected)
  }

  @Test func splitIsTheFirstNinetyPercentForTrainingAndTheRestForDev() throws {
    let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: shakespearePath)))
    let count = bytes.count  // ASCII: one character per byte
    let data = try TextData.load(try Config.load(path: tinyConfigPath))
    #expect(data.train.count == Int(Double(count) * 0.9))
    #expect(data.dev.count == count - Int(Double(count) * 0.9))
    // Together, in order, they are the whole text: decode back and compare with the file.
    let decoded = data.tokenizer.decode(data.train.array() + data.dev.array())
    #expect(Array(decoded.utf8) == bytes)
  }

  @Test func charTokenizerRoundTripsNonASCIIText() throws {
    let text = String(repeating: "naïve café — ½ 日本語 🙂\n", count: 10)
    let path = try temporaryFile(Array(text.utf8))
    let data = try TextData.load(try config(dataPath: path))
    let scalars = Set(text.unicodeScalars)
    #expect(data.tokenizer.vocabSize == scalars.count)
    #expect(data.train.count + data.dev.count == text.unicodeScalars.count)
    #expect(data.tokenizer.decode(data.train.array() + data.dev.array()) == text)
  }

  @Test func byteTokenizerHasVocabulary256AndRoundTripsArbitraryBytes() throws {
    // Every byte value, including ones that are never valid in UTF-8 (0xC0, 0xC1, 0xF5...0xFF) and
    // lone continuation bytes, then a pseudo-random tail.
    var bytes = (0..<4).flatMap { _ in (0...255).map { UInt8($0) } }
    var state: UInt64 = 12345
    for _ in 0..<1000 {
      state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
      bytes.append(UInt8(truncatingIfNeeded: state >> 56))
    }
    let path = try temporaryFile(bytes)
    let data = try TextData.load(try config(dataPath: path, tokenizer: "byte"))
    #expect(data.tokenizer.kind == .byte)
    #expect(data.tokenizer.vocabSize == 256)
    let tokens = data.train.array() + data.dev.array()
    #expect(tokens.count == bytes.count, "one token per byte of the file")
    // Report the first difference only: printing two 2,000-element arrays helps no one.
    let expected = bytes.map { Int32($0) }
    let mismatch = zip(tokens, expected).enumerated().first { $0.element.0 != $0.element.1 }
    let (index, token, byte) = (mismatch?.offset ?? -1, mismatch?.element.0 ?? -1, mismatch?.element.1 ?? -1)
    #expect(mismatch == nil, "token \(index) is \(token), but byte \(index) of the file is \(byte)")
    #expect(data.train.count == Int(Double(bytes.count) * 0.9))
  }

  @Test func byteTokenizerEncodesUTF8TextAsItsBytes() throws {
    let text = "héllo, wörld 🙂"
    let tokens = try Tokenizer.bytes.encode(text, source: "test")
    #expect(tokens == text.utf8.map { Int32($0) })
    #expect(Tokenizer.bytes.decode(tokens) == text)
  }

  /// nanoGPT's data/shakespeare recipe: the text cut at 90% of its characters, each part encoded with
  /// GPT-2's tokenizer: "train has 301,966 tokens, val has 36,059 tokens" (its readme).
  @Test func gpt2TokensOfTinyShakespeareAreNanoGPTsCounts() throws {
    let json = """
      {"data": {"train_path": "\(shakespearePath)",
                "tokenizer": {"kind": "bpe", "path": "\(repository.path)/data/tokenizers/gpt2.tiktoken"}}}
      """
    let data = try TextData.load(try Config.parse(json: Data(json.utf8), sourcePath: NSTemporaryDirectory() + "gpt2.json"))
    #expect(data.tokenizer.kind == .bpe)
    #expect(data.tokenizer.vocabSize == 50257)
    #expect(data.train.count == 301_966)
    #expect(data.dev.count == 36_059)
    let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: shakespearePath)))
    #expect(data.tokenizer.decodeBytes(data.train.array() + data.dev.array()) == bytes)
    // Bits per byte divide by the bytes each token stands for: every byte of the text once.
    let perToken = data.tokenizer.bytesPerToken()
    #expect((data.train.array() + data.dev.array()).reduce(0) { $0 + Int(perToken[Int($1)]) } == bytes.count)
  }

  /// Sampling emits whole characters although a token (or a byte) may end inside one.
  @Test func utf8StreamHoldsBackAnUnfinishedCharacter() {
    let text = "a é 日本 🙂!"
    var stream = UTF8Stream()
    var out = ""
    for byte in text.utf8 {
      let piece = stream.append([byte])
      #expect(!piece.contains("\u{FFFD}"), "a replacement character after byte \(byte)")
      out += piece
    }
    out += stream.finish()
    #expect(out == text)
    var broken = UTF8Stream()
    #expect(broken.append([0xE6, 0x97]) == "")
    #expect(broken.finish() == "\u{FFFD}")
  }

  // MARK: - Training batches

  /// Tokens and targets of samples first..<first+count of (step, micro).
  private func batch(
    _ sampler: BatchSampler, _ stream: [Int32], step: Int, micro: Int, first: Int, count: Int
  ) -> (tokens: [Int32], targets: [Int32]) {
    let T = sampler.sequenceLength
    var tokens = [Int32](repeating: -1, count: count * T)
    var targets = [Int32](repeating: -1, count: count * T)
    tokens.withUnsafeMutableBufferPointer { t in
      targets.withUnsafeMutableBufferPointer { y in
        try! sampler.fill(
          tokens: t.baseAddress!, targets: y.baseAddress!, from: TokenStream(stream), vocabularySize: Int(Int32.max),
          step: step, microStep: micro, firstSample: first, count: count)
      }
    }
    return (tokens, targets)
  }

  /// A stream whose token at position i is i (mod 2^31), so a window's start can be read off it.
  private static let stream = (0..<5000).map { Int32($0) }

  @Test func batchIsAPureFunctionOfSeedStepMicroStepAndSample() {
    let T = 16
    let sampler = BatchSampler(seed: 7, sequenceLength: T, tokenCount: Self.stream.count)
    let again = BatchSampler(seed: 7, sequenceLength: T, tokenCount: Self.stream.count)
    let a = batch(sampler, Self.stream, step: 3, micro: 1, first: 0, count: 8)
    let b = batch(again, Self.stream, step: 3, micro: 1, first: 0, count: 8)
    #expect(a.tokens == b.tokens && a.targets == b.targets)
    // Asking again after drawing other batches gives the same batch: there is no loader state.
    _ = batch(sampler, Self.stream, step: 4, micro: 0, first: 0, count: 8)
    #expect(batch(sampler, Self.stream, step: 3, micro: 1, first: 0, count: 8).tokens == a.tokens)

    // Each of seed, step and micro-step changes the batch.
    let otherSeed = BatchSampler(seed: 8, sequenceLength: T, tokenCount: Self.stream.count)
    #expect(batch(otherSeed, Self.stream, step: 3, micro: 1, first: 0, count: 8).tokens != a.tokens)
    #expect(batch(sampler, Self.stream, step: 2, micro: 1, first: 0, count: 8).tokens != a.tokens)
    #expect(batch(sampler, Self.stream, step: 3, micro: 0, first: 0, count: 8).tokens != a.tokens)
  }

  @Test func sampleDoesNotDependOnHowTheBatchIsSplit() {
    let T = 16
    let sampler = BatchSampler(seed: 1337, sequenceLength: T, tokenCount: Self.stream.count)
    let whole = batch(sampler, Self.stream, step: 5, micro: 2, first: 0, count: 8)
    let low = batch(sampler, Self.stream, step: 5, micro: 2, first: 0, count: 4)
    let high = batch(sampler, Self.stream, step: 5, micro: 2, first: 4, count: 4)
    #expect(whole.tokens == low.tokens + high.tokens)
    #expect(whole.targets == low.targets + high.targets)
    // One sample at a time, as eight ranks of batch 1 would draw them.
    for g in 0..<8 {
      let one = batch(sampler, Self.stream, step: 5, micro: 2, first: g, count: 1)
      #expect(one.tokens == Array(whole.tokens[(g * T)..<((g + 1) * T)]), "sample \(g)")
    }
  }

  @Test func eachSampleIsAWindowOfTheStreamAndTargetsAreShiftedByOne() {
    let T = 16
    let sampler = BatchSampler(seed: 99, sequenceLength: T, tokenCount: Self.stream.count)
    let count = 64
    let b = batch(sampler, Self.stream, step: 0, micro: 0, first: 0, count: count)
    var starts = Set<Int32>()
    for s in 0..<count {
      let tokens = Array(b.tokens[(s * T)..<((s + 1) * T)])
      let targets = Array(b.targets[(s * T)..<((s + 1) * T)])
      let start = tokens[0]
      starts.insert(start)
      #expect(tokens == Array(Self.stream[Int(start)..<(Int(start) + T)]), "sample \(s) is a contiguous window")
      #expect(targets == Array(Self.stream[(Int(start) + 1)..<(Int(start) + T + 1)]), "sample \(s) targets")
      #expect(Int(start) + T < Self.stream.count, "the last target lies inside the stream")
    }
    #expect(starts.count > count / 2, "starts are spread over the stream, not repeated")
  }

  @Test func windowStartsReachBothEndsOfTheStream() {
    // A stream just one token longer than a window leaves exactly one valid start: 0.
    let T = 8
    let short = (0..<(T + 1)).map { Int32($0) }
    let sampler = BatchSampler(seed: 3, sequenceLength: T, tokenCount: short.count)
    let b = batch(sampler, short, step: 0, micro: 0, first: 0, count: 4)
    #expect(b.tokens == Array(repeating: Array(short[0..<T]), count: 4).flatMap { $0 })
    #expect(b.targets == Array(repeating: Array(short[1...T]), count: 4).flatMap { $0 })
  }

  // MARK: - Dev windows

  @Test(arguments: [(1000, 16), (17, 16), (33, 16), (1001, 10), (5, 4), (12, 1)])
  func devWindowsCoverTheSplitOnceInOrder(tokenCount: Int, T: Int) {
    let stream = (0..<tokenCount).map { Int32($0) }
    let windows = DevWindows(tokenCount: tokenCount, sequenceLength: T)
    // Every predicted position 1...n*T is a target exactly once; fewer than T tokens are left over.
    #expect(windows.count == (tokenCount - 1) / T)
    #expect(tokenCount - 1 - windows.count * T < T)
    var tokens = [Int32](repeating: -1, count: windows.count * T)
    var targets = [Int32](repeating: -1, count: windows.count * T)
    tokens.withUnsafeMutableBufferPointer { t in
      targets.withUnsafeMutableBufferPointer { y in
        try! windows.fill(
          tokens: t.baseAddress!, targets: y.baseAddress!, from: TokenStream(stream), vocabularySize: tokenCount,
          windows: 0..<windows.count)
      }
    }
    #expect(tokens == Array(stream[0..<(windows.count * T)]))
    #expect(targets == Array(stream[1..<(windows.count * T + 1)]))
    #expect(Set(targets).count == targets.count, "no target predicted twice")
  }

  @Test(arguments: [0, 1, 3, 4, 5, 7, 100, 1037])
  func shareOfRankPartitionsTheWindows(windowCount: Int) {
    let T = 4
    let windows = DevWindows(tokenCount: windowCount * T + 1, sequenceLength: T)
    #expect(windows.count == windowCount)
    for size in 1...5 {
      let shares = (0..<size).map { windows.share(rank: $0, of: size) }
      // Contiguous, in rank order, starting at 0 and ending at count: each window exactly once.
      #expect(shares.first!.lowerBound == 0, "size \(size)")
      #expect(shares.last!.upperBound == windowCount, "size \(size)")
      for r in 1..<size { #expect(shares[r].lowerBound == shares[r - 1].upperBound, "size \(size) rank \(r)") }
      #expect(shares.map(\.count).reduce(0, +) == windowCount)
      let counts = shares.map(\.count)
      #expect(counts.max()! - counts.min()! <= 1, "balanced at size \(size): \(counts)")
    }
  }
}
