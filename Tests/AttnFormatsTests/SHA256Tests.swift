// SHA-256 against the FIPS 180-2 example vectors, against itself fed in odd-sized pieces (the
// block-buffering paths), and against Python's hashlib on a multi-MB file (the chunked file path).
import Foundation
import TestProcesses
import Testing

import AttnFormats

@Suite struct SHA256Tests {
  @Test(arguments: [
    ("", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
    ("abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
    (
      "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
      "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
    ),
  ])
  func nistVectors(_ message: String, _ digest: String) {
    #expect(SHA256.hexDigest(of: Data(message.utf8)) == digest)
  }

  @Test func oneMillionAsInOddPieces() {
    let message = [UInt8](repeating: UInt8(ascii: "a"), count: 1_000_000)
    let expected = "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"
    var whole = SHA256()
    whole.update(message)
    #expect(whole.hexDigest() == expected)

    // Piece sizes straddle the 64-byte block and the 56-byte padding boundary.
    var pieces = SHA256()
    var at = 0
    var size = 1
    message.withUnsafeBytes { all in
      while at < all.count {
        let end = min(at + size, all.count)
        pieces.update(UnsafeRawBufferPointer(rebasing: all[at..<end]))
        at = end
        size = size % 131 + 1
      }
    }
    #expect(pieces.hexDigest() == expected)
  }

  @Test func finalizeLeavesTheHashUsable() {
    var h = SHA256()
    h.update(Array("ab".utf8))
    let ab = h.finalize()
    #expect(h.finalize() == ab)
    #expect(SHA256.hex(ab) == "fb8e20fc2e4c3f248c60c39bd652f3c1347298bb977b8b4d5903b85055620603")
    h.update(Array("c".utf8))
    #expect(h.hexDigest() == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
  }

  @Test func paddingBoundaryLengthsMatchAWholeMessage() {
    // Lengths 55, 56, 63, 64 and 65 put the length field in the same or the next block.
    for n in [55, 56, 63, 64, 65, 119, 120] {
      let bytes = (0..<n).map { UInt8(truncatingIfNeeded: $0 &* 31) }
      var split = SHA256()
      split.update(Array(bytes.prefix(n / 2)))
      split.update(Array(bytes.dropFirst(n / 2)))
      #expect(split.hexDigest() == SHA256.hexDigest(of: Data(bytes)), "length \(n)")
    }
  }

  @Test(.enabled(if: hasPython3, "python3 is not installed"))
  func fileDigestMatchesPythonHashlib() throws {
    let path = (NSTemporaryDirectory() as NSString).appendingPathComponent("attn-sha256-" + UUID().uuidString)
    defer { unlink(path) }
    var rng = SystemRandomNumberGenerator()
    let words = (0..<(3 << 20) / 8).map { _ in rng.next() as UInt64 }
    let bytes = words.withUnsafeBytes { Data($0) } + Data([1, 2, 3])  // 3 MiB and a partial block
    try bytes.write(to: URL(fileURLWithPath: path))
    let python = try python3(
      "import hashlib, sys; print(hashlib.sha256(open(sys.argv[1], 'rb').read()).hexdigest())", [path])
    #expect(try SHA256.hexDigest(ofFile: path) == python.trimmingCharacters(in: .whitespacesAndNewlines))
  }

  @Test func missingFileNamesThePath() {
    let path = (NSTemporaryDirectory() as NSString).appendingPathComponent("attn-sha256-missing-" + UUID().uuidString)
    #expect {
      _ = try SHA256.hexDigest(ofFile: path)
    } throws: { error in
      (error as? FileError)?.description.hasPrefix(path + ": open for hashing failed: No such file") == true
    }
  }
}

private let hasPython3: Bool = (try? python3("import hashlib", [])) != nil
