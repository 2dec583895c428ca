// GPT-2's bytes_to_unicode: the 256 byte values as printable characters, so that a byte-level
// vocabulary can be written as JSON strings (Hugging Face tokenizer.json, GPT-2's vocab.json and
// merges.txt). Printable Latin-1 bytes stand for themselves; the others (controls, space, 0x7F-0xA0,
// 0xAD) map in order to U+0100 and up, so a space is written "Ġ" (U+0120) and a newline "Ċ".

enum ByteLevelAlphabet {
  /// The character of each byte value.
  static let characters: [Unicode.Scalar] = {
    var printable = Set<UInt32>()
    for range in [0x21...0x7E, 0xA1...0xAC, 0xAE...0xFF] { printable.formUnion(range.map(UInt32.init)) }
    var next: UInt32 = 256
    return (0..<256).map { byte -> Unicode.Scalar in
      if printable.contains(UInt32(byte)) { return Unicode.Scalar(UInt32(byte))! }
      defer { next += 1 }
      return Unicode.Scalar(next)!
    }
  }()

  private static let bytes: [Unicode.Scalar: UInt8] = Dictionary(
    uniqueKeysWithValues: characters.enumerated().map { ($1, UInt8($0)) })

  /// The bytes a token string stands for; nil if a character is outside the alphabet.
  static func decode(_ token: String) -> [UInt8]? {
    var result: [UInt8] = []
    result.reserveCapacity(token.unicodeScalars.count)
    for scalar in token.unicodeScalars {
      guard let byte = bytes[scalar] else { return nil }
      result.append(byte)
    }
    return result
  }

  static func encode(_ bytes: some Sequence<UInt8>) -> String {
    var text = String.UnicodeScalarView()
    for byte in bytes { text.append(characters[Int(byte)]) }
    return String(text)
  }
}
