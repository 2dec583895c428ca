// BERT's masking, as TokenMasking draws it: exactly P distinct positions per window, their targets
// the original ids and every other target -1, the rest of the window untouched; [MASK] / random /
// kept in about 80 / 10 / 10; the same key gives the same masking and other samples other ones; a
// learned BPE carries the [MASK] token the config asks for, and a tokenizer without one is refused.

@testable import AttnTrain
import AttnCore
import AttnFormats
import Foundation
import Testing

@Suite struct TokenMaskingTests {
  static let tokenizer = Tokenizer(
    try! BytePairEncoding.train(
      on: [String(repeating: "the cat sat on the mat; a dog ran in the fog. ", count: 20)], vocabularySize: 270,
      specialTokens: ["[MASK]"]))

  static func masking(probability: Double = 0.15, blockSize: Int = 64, tokenizer: Tokenizer = tokenizer) throws -> TokenMasking {
    var config = Config(sourcePath: "/tmp/mlm.json")
    config.task.kind = .maskedLanguageModel
    config.task.maskProbability = probability
    config.model.blockSize = blockSize
    return try #require(try TokenMasking(config, tokenizer: tokenizer))
  }

  /// Masks window `sample` of a fixed text of ids 0..<257 (none of them [MASK]).
  static func masked(_ masking: TokenMasking, sample: Int, T: Int = 64) -> (original: [Int32], tokens: [Int32], targets: [Int32]) {
    let original = (0..<T).map { Int32(($0 * 37 + sample * 11) % 257) }
    var tokens = original
    var targets = [Int32](repeating: 99, count: T)
    var scratch = [Int32](repeating: 0, count: T)
    masking.apply(
      tokens: &tokens, targets: &targets, T: T, key: masking.key(step: 3, microStep: 0, globalSample: sample),
      positions: &scratch)
    return (original, tokens, targets)
  }

  @Test func theLearnedTokenizerHasTheMaskTokenAfterEndOfText() {
    let t = Self.tokenizer
    #expect(t.vocabSize == 270)
    #expect(t.endOfText == 268 && t.specialID("[MASK]") == 269)
    // Read back from its tokenizer.json, the special token is still there.
    let json = t.bytePairEncoding!.huggingFaceJSON.description
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("mask-\(UUID().uuidString.prefix(8)).json").path
    try? json.write(toFile: path, atomically: true, encoding: .utf8)
    defer { try? FileManager.default.removeItem(atPath: path) }
    #expect((try? Tokenizer(BytePairEncoding.load(path: path)))?.specialID("[MASK]") == 269)
  }

  @Test func exactlyPDistinctPositionsArePredictedAndTheRestIsUntouched() throws {
    let masking = try Self.masking()
    #expect(masking.predictedPerSequence == 10)  // round(0.15 x 64)
    for sample in 0..<50 {
      let (original, tokens, targets) = Self.masked(masking, sample: sample)
      let predicted = targets.indices.filter { targets[$0] >= 0 }
      #expect(predicted.count == 10)
      #expect(targets.allSatisfy { $0 == -1 || $0 >= 0 })
      for t in predicted { #expect(targets[t] == original[t]) }
      for t in targets.indices where targets[t] < 0 { #expect(tokens[t] == original[t]) }
    }
  }

  @Test func maskRandomAndKeptComeInAboutEightyTenTen() throws {
    let masking = try Self.masking()
    var (mask, kept, other) = (0, 0, 0)
    for sample in 0..<1000 {
      let (original, tokens, targets) = Self.masked(masking, sample: sample)
      for t in targets.indices where targets[t] >= 0 {
        if tokens[t] == masking.maskID { mask += 1 } else if tokens[t] == original[t] { kept += 1 } else { other += 1 }
      }
    }
    // 10,000 draws: the shares' standard deviations are 0.4 and 0.3 points; a random id equals the
    // original about 1 time in 270, which the kept share absorbs.
    let total = Double(mask + kept + other)
    #expect(abs(Double(mask) / total - 0.8) < 0.02)
    #expect(abs(Double(kept) / total - 0.1) < 0.015)
    #expect(abs(Double(other) / total - 0.1) < 0.015)
  }

  @Test func theKeyDecidesEverything() throws {
    let masking = try Self.masking()
    let a = Self.masked(masking, sample: 5)
    #expect(Self.masked(masking, sample: 5) == a)
    #expect(Self.masked(masking, sample: 6).targets != a.targets)
    #expect(masking.key(devWindow: 3) != masking.key(step: 3, microStep: 0, globalSample: 3))
    // Every position is chosen sometimes: the draw is not stuck on a few.
    var seen = Set<Int>()
    for sample in 0..<200 {
      let targets = Self.masked(masking, sample: sample).targets
      seen.formUnion(targets.indices.filter { targets[$0] >= 0 })
    }
    #expect(seen.count == 64)
  }

  @Test func aShortWindowStillPredictsOneToken() throws {
    #expect(try Self.masking(probability: 0.15, blockSize: 3).predictedPerSequence == 1)
    #expect(try Self.masking(probability: 0.99, blockSize: 8).predictedPerSequence == 8)
  }

  @Test func aTokenizerWithoutMaskIsRefusedNamingTheField() throws {
    var config = Config(sourcePath: "/tmp/mlm.json")
    config.task.kind = .maskedLanguageModel
    #expect {
      _ = try TokenMasking(config, tokenizer: .bytes)
    } throws: { error in
      let e = error as? InputError
      return e?.file == "/tmp/mlm.json" && e?.field == "data.tokenizer" && "\(e!)".contains("[MASK]")
    }
    config.task.kind = .languageModel
    #expect(try TokenMasking(config, tokenizer: .bytes) == nil)
  }
}

extension TokenMasking: Equatable {
  public static func == (a: TokenMasking, b: TokenMasking) -> Bool {
    a.maskID == b.maskID && a.predictedPerSequence == b.predictedPerSequence && a.vocabularySize == b.vocabularySize
  }
}
