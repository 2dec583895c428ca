// The strict JSON reader under the config: the distinctions Foundation blurs (integer, number, bool),
// key order, and errors with a line and column.
import AttnFormats
import Foundation
import Testing

private func json(_ text: String) throws -> JSONValue { try JSONValue.parse(Data(text.utf8)) }

@Suite struct ConfigJSONValueTests {
  @Test func keepsEveryKindApartAndKeysInOrder() throws {
    let value = try json(#" {"z": 1, "a": 1.0, "m": true, "n": null, "s": "x", "l": [-0, 2e3], "o": {}} "#)
    #expect(
      value
        == .object([
          (key: "z", value: .integer("1")), (key: "a", value: .number(1)), (key: "m", value: .bool(true)),
          (key: "n", value: .null), (key: "s", value: .string("x")),
          (key: "l", value: .array([.integer("-0"), .number(2000)])), (key: "o", value: .object([])),
        ]))
  }

  @Test func decodesEscapesAndWritesThemBack() throws {
    let value = try json(#"["a\"b\\c\/d\n\t\u00e9\ud83d\ude00\u0001", "€"]"#)
    #expect(value == .array([.string("a\"b\\c/d\n\té😀\u{01}"), .string("€")]))
    #expect(try json(value.prettyPrinted()) == value)
    #expect(value.description == #"["a\"b\\c/d\n\té😀\u0001", "€"]"#)
  }

  @Test func prettyPrintsWithSortedKeysAndTwoSpaces() throws {
    let value = try json(#"{"b": [1, {"y": false, "x": 0.5}], "a": {}, "c": []}"#)
    #expect(
      value.prettyPrinted() == """
        {
          "a": {},
          "b": [
            1,
            {
              "x": 0.5,
              "y": false
            }
          ],
          "c": []
        }
        """)
  }

  @Test func numbersKeepTheirValueThroughPrinting() throws {
    for x in [0.1, 1e-8, 1e-4, 3e-4, 0.99, 1.0, 123456789.125, 1e300, -2.5e-300] {
      #expect(try json(JSONValue.number(x).prettyPrinted()) == .number(x))
    }
    #expect(try json("18446744073709551616") == .integer("18446744073709551616"))
  }

  @Test(arguments: [
    ("01", "leading zeros", 1, 1),
    ("1.", "digit after '.'", 1, 3),
    ("-", "expected a digit", 1, 2),
    ("[1 2]", "',' or ']'", 1, 4),
    ("[1,]", "trailing comma", 1, 4),
    ("{\"a\" 1}", "':'", 1, 6),
    ("{\"a\": 1} x", "after the end", 1, 10),
    ("\"abc", "unterminated string", 1, 1),
    ("\"a\nb\"", "control character", 1, 3),
    ("\"\\x\"", "invalid escape", 1, 2),
    ("\"\\ud83d\"", "unpaired surrogate", 1, 8),
    ("tru", "expected a value", 1, 1),
    ("\n\n  nul", "expected a value", 3, 3),
    ("1e400", "too large", 1, 1),
  ])
  func refusesWithAPosition(text: String, words: String, line: Int, column: Int) throws {
    let error = try #require(throws: JSONSyntaxError.self) { try json(text) }
    #expect(error.message.contains(words), "\(error)")
    #expect(error.line == line, "\(error)")
    #expect(error.column == column, "\(error)")
  }
}
