// data.tokenizer {"kind": "bpe", "vocab_size": N}: a byte-level BPE learned from the training split
// (never the dev text; the first GiB of it at most) the first time a run needs it, and kept as the
// run directory's tokenizer.json, which Hugging Face `tokenizers` loads too. Later starts read it back
// instead of learning again; a resumed run takes the checkpoint's copy.

import AttnFormats
import Foundation

extension Tokenizer {
  /// The tokenizer at `file` when it is there (and has `vocab_size` ids), else one learned from the
  /// config's training text and written to `file`. nil unless data.tokenizer asks for a learned BPE.
  /// `trainingTexts` gives the texts to learn from (by default the training split of the sources).
  public static func learned(
    for config: Config, file: String, log: RunLog, trainingTexts: (() throws -> [String])? = nil
  ) throws -> Tokenizer? {
    guard case .trainedBPE(let size, let specials) = config.data.tokenizer else { return nil }
    if FileManager.default.fileExists(atPath: file) {
      let tokenizer = Tokenizer(try BytePairEncoding.load(path: file))
      guard tokenizer.vocabSize == size else {
        throw InputError(
          file: file, field: "data.tokenizer",
          problem: "this learned tokenizer has \(tokenizer.vocabSize) ids, the config asks for vocab_size \(size)",
          hint: "move the file away to learn a new one, or set vocab_size to \(tokenizer.vocabSize)")
      }
      if let missing = specials.first(where: { tokenizer.specialID($0) == nil }) {
        throw InputError(
          file: file, field: "data.tokenizer",
          problem: "this learned tokenizer has no special token \(missing.debugDescription), which the config's special_tokens lists",
          hint: "move the file away to learn a new one, or remove it from special_tokens")
      }
      log.say("tokenizer: \(file) (byte-level BPE, \(size) ids)")
      return tokenizer
    }
    let clock = Stopwatch()
    let tokenizer =
      try trainingTexts.map { Tokenizer(try BytePairEncoding.train(on: try $0(), vocabularySize: size, specialTokens: specials)) }
      ?? CorpusSources(config.data, tokenizer: .bpe).makeTokenizer(config.data.tokenizer)
    try replaceFileAtomically(path: file, contents: Data(tokenizer.bytePairEncoding!.huggingFaceJSON.prettyPrinted().utf8))
    log.say(String(format: "tokenizer: learned %d ids from the training text in %.1f s, saved as %@", tokenizer.vocabSize, clock.seconds, file))
    return tokenizer
  }
}
