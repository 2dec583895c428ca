// GPT-2's pre-tokenizer, the regular expression
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// written out as a scanner over UTF-8 bytes, so that no general regex engine runs in the hot path of
// data preparation. The alternatives are tried in order at each position, as the regex does: a
// contraction; an optional space and a run of letters, of numbers, or of other characters; else
// whitespace, of which a run followed by a non-space leaves its last character to start the next
// piece (" world" stays together). Letters are \p{L}, numbers \p{N}, whitespace the White_Space
// property, as in tiktoken's and Hugging Face's Rust regex engines.

enum GPT2PreTokenizer {
  enum CharacterClass: UInt8 { case letter, number, whitespace, other }

  /// Calls `piece` with the byte range of each piece of `text` (valid UTF-8), in order; the pieces
  /// tile the text.
  static func forEachPiece(_ text: UnsafeBufferPointer<UInt8>, _ piece: (Range<Int>) -> Void) {
    let n = text.count
    var i = 0
    while i < n {
      let first = classify(text, i)
      if text[i] == UInt8(ascii: "'"), let length = contraction(text, i + 1) {
        piece(i..<(i + 1 + length))
        i += 1 + length
        continue
      }
      // An optional space, then a run of one class other than whitespace.
      var runStart = i
      var runClass = first.class
      if text[i] == 0x20 && i + 1 < n {
        let next = classify(text, i + 1)
        if next.class != .whitespace {
          runStart = i + 1
          runClass = next.class
        }
      }
      if runClass != .whitespace {
        var end = runStart
        while end < n {
          let c = classify(text, end)
          guard c.class == runClass else { break }
          end += c.length
        }
        piece(i..<end)
        i = end
        continue
      }
      // Whitespace: the run, less its last character when a non-space follows and the run is longer
      // than one character (\s+(?!\S), else \s+).
      var end = i
      var lastStart = i
      while end < n {
        let c = classify(text, end)
        guard c.class == .whitespace else { break }
        lastStart = end
        end += c.length
      }
      let stop = end == n || lastStart == i ? end : lastStart
      piece(i..<stop)
      i = stop
    }
  }

  /// The length of "s", "t", "re", "ve", "m", "ll" or "d" at `i`, the letters after an apostrophe.
  @inline(__always)
  private static func contraction(_ text: UnsafeBufferPointer<UInt8>, _ i: Int) -> Int? {
    guard i < text.count else { return nil }
    switch text[i] {
    case UInt8(ascii: "s"), UInt8(ascii: "t"), UInt8(ascii: "m"), UInt8(ascii: "d"): return 1
    case UInt8(ascii: "r"), UInt8(ascii: "v"):
      return i + 1 < text.count && text[i + 1] == UInt8(ascii: "e") ? 2 : nil
    case UInt8(ascii: "l"):
      return i + 1 < text.count && text[i + 1] == UInt8(ascii: "l") ? 2 : nil
    default: return nil
    }
  }

  /// The class of the character starting at byte `i`, and its length in bytes.
  @inline(__always)
  static func classify(_ text: UnsafeBufferPointer<UInt8>, _ i: Int) -> (class: CharacterClass, length: Int) {
    let lead = text[i]
    if lead < 0x80 { return (asciiClasses[Int(lead)], 1) }
    let (scalar, length) = decodeScalar(text, i)
    return (classify(scalar), length)
  }

  static func classify(_ scalar: Unicode.Scalar) -> CharacterClass {
    if scalar.properties.isWhitespace { return .whitespace }
    switch scalar.properties.generalCategory {
    case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return .letter
    case .decimalNumber, .letterNumber, .otherNumber: return .number
    default: return .other
    }
  }

  private static let asciiClasses: [CharacterClass] = (0..<128).map { classify(Unicode.Scalar(UInt8($0))) }

  /// The scalar whose UTF-8 encoding starts at `i` (the text is valid UTF-8).
  @inline(__always)
  private static func decodeScalar(_ text: UnsafeBufferPointer<UInt8>, _ i: Int) -> (Unicode.Scalar, Int) {
    let lead = UInt32(text[i])
    let value: UInt32
    let length: Int
    if lead < 0xE0 {
      (value, length) = ((lead & 0x1F) << 6 | UInt32(text[i + 1] & 0x3F), 2)
    } else if lead < 0xF0 {
      (value, length) = ((lead & 0x0F) << 12 | UInt32(text[i + 1] & 0x3F) << 6 | UInt32(text[i + 2] & 0x3F), 3)
    } else {
      let high = (lead & 0x07) << 18 | UInt32(text[i + 1] & 0x3F) << 12
      (value, length) = (high | UInt32(text[i + 2] & 0x3F) << 6 | UInt32(text[i + 3] & 0x3F), 4)
    }
    return (Unicode.Scalar(value) ?? "\u{FFFD}", length)
  }
}
