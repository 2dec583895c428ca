// SHA-256 (FIPS 180-4) in plain Swift, so checkpoints can record and verify content hashes without
// a crypto dependency. Speed matters because checkpoints are hundreds of MB: whole 64-byte blocks
// are compressed straight from the caller's buffer, and only a tail shorter than a block is copied.
import Foundation

#if canImport(Glibc)
  import Glibc
#elseif canImport(Musl)
  import Musl
#elseif canImport(Darwin)
  import Darwin
#endif

public struct SHA256: Sendable {
  private var state: SIMD8<UInt32> = [
    0x6a09_e667, 0xbb67_ae85, 0x3c6e_f372, 0xa54f_f53a, 0x510e_527f, 0x9b05_688c, 0x1f83_d9ab, 0x5be0_cd19,
  ]
  /// Bytes of an unfinished block; only the first `pendingCount` are meaningful.
  private var pending = SIMD64<UInt8>()
  private var pendingCount = 0
  private var totalBytes: UInt64 = 0

  public init() {}

  public mutating func update(_ bytes: UnsafeRawBufferPointer) {
    guard var next = bytes.baseAddress, bytes.count > 0 else { return }
    var left = bytes.count
    totalBytes &+= UInt64(left)
    if pendingCount > 0 {
      let take = min(64 - pendingCount, left)
      withUnsafeMutableBytes(of: &pending) { $0.baseAddress!.advanced(by: pendingCount).copyMemory(from: next, byteCount: take) }
      pendingCount += take
      next += take
      left -= take
      if pendingCount < 64 { return }
      let block = pending
      withUnsafeBytes(of: block) { compress(blocks: $0.baseAddress!, count: 1) }
      pendingCount = 0
    }
    let whole = left / 64
    if whole > 0 { compress(blocks: next, count: whole) }
    next += whole * 64
    left -= whole * 64
    if left > 0 {
      withUnsafeMutableBytes(of: &pending) { $0.baseAddress!.copyMemory(from: next, byteCount: left) }
      pendingCount = left
    }
  }

  public mutating func update(_ data: Data) {
    data.withUnsafeBytes { update($0) }
  }

  public mutating func update(_ bytes: [UInt8]) {
    bytes.withUnsafeBytes { update($0) }
  }

  /// The 32-byte digest of everything so far. Does not change `self`, so hashing may continue.
  public func finalize() -> [UInt8] {
    var copy = self
    let bitLength = totalBytes &* 8
    // Padding: 0x80, zeros up to 56 mod 64, then the message length in bits, big-endian.
    var tail = [UInt8](repeating: 0, count: pendingCount < 56 ? 64 - pendingCount : 128 - pendingCount)
    tail[0] = 0x80
    for i in 0..<8 { tail[tail.count - 1 - i] = UInt8(truncatingIfNeeded: bitLength >> (8 * UInt64(i))) }
    tail.withUnsafeBytes { copy.update($0) }
    precondition(copy.pendingCount == 0)
    var digest = [UInt8]()
    digest.reserveCapacity(32)
    for i in 0..<8 { withUnsafeBytes(of: copy.state[i].bigEndian) { digest.append(contentsOf: $0) } }
    return digest
  }

  public func hexDigest() -> String { SHA256.hex(finalize()) }

  public static func hex(_ bytes: [UInt8]) -> String {
    let digits = Array("0123456789abcdef".utf8)
    var out = [UInt8]()
    out.reserveCapacity(bytes.count * 2)
    for b in bytes {
      out.append(digits[Int(b >> 4)])
      out.append(digits[Int(b & 15)])
    }
    return String(decoding: out, as: UTF8.self)
  }

  /// The 32-byte digest of `data`.
  public static func hash(_ data: Data) -> [UInt8] {
    var h = SHA256()
    h.update(data)
    return h.finalize()
  }

  public static func hexDigest(of data: Data) -> String {
    var h = SHA256()
    h.update(data)
    return h.hexDigest()
  }

  /// Hashes a file in 1 MiB reads, so memory stays flat however large the checkpoint is.
  public static func hexDigest(ofFile path: String) throws -> String {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    if fd < 0 { throw FileError(path: path, operation: "open for hashing", errno: errno) }
    defer { close(fd) }
    let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 64)
    defer { chunk.deallocate() }
    var h = SHA256()
    while true {
      let n = read(fd, chunk.baseAddress!, chunk.count)
      if n < 0 {
        if errno == EINTR { continue }
        throw FileError(path: path, operation: "read for hashing", errno: errno)
      }
      if n == 0 { break }
      h.update(UnsafeRawBufferPointer(rebasing: chunk[0..<n]))
    }
    return h.hexDigest()
  }

  // MARK: - Compression

  private mutating func compress(blocks: UnsafeRawPointer, count: Int) {
    var h = state
    // Local buffer pointers, not the global array: keeps retain/bounds work out of the rounds.
    roundConstants.withUnsafeBufferPointer { k in
      withUnsafeTemporaryAllocation(of: UInt32.self, capacity: 64) { w in
        var p = blocks
        for _ in 0..<count {
          for i in 0..<16 { w[i] = UInt32(bigEndian: p.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)) }
          for i in 16..<64 {
            let s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3)
            let s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10)
            w[i] = w[i - 16] &+ s0 &+ w[i - 7] &+ s1
          }
          var a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7]
          // Eight rounds per iteration with the variables renamed instead of shifted down.
          for i in stride(from: 0, to: 64, by: 8) {
            round(a, b, c, &d, e, f, g, &hh, k[i] &+ w[i])
            round(hh, a, b, &c, d, e, f, &g, k[i + 1] &+ w[i + 1])
            round(g, hh, a, &b, c, d, e, &f, k[i + 2] &+ w[i + 2])
            round(f, g, hh, &a, b, c, d, &e, k[i + 3] &+ w[i + 3])
            round(e, f, g, &hh, a, b, c, &d, k[i + 4] &+ w[i + 4])
            round(d, e, f, &g, hh, a, b, &c, k[i + 5] &+ w[i + 5])
            round(c, d, e, &f, g, hh, a, &b, k[i + 6] &+ w[i + 6])
            round(b, c, d, &e, f, g, hh, &a, k[i + 7] &+ w[i + 7])
          }
          h &+= SIMD8(a, b, c, d, e, f, g, hh)
          p += 64
        }
      }
    }
    state = h
  }
}

/// One SHA-256 round: `d += t1`, `h = t1 + t2`; the caller rotates the names.
@inline(__always) private func round(
  _ a: UInt32, _ b: UInt32, _ c: UInt32, _ d: inout UInt32,
  _ e: UInt32, _ f: UInt32, _ g: UInt32, _ h: inout UInt32, _ kw: UInt32
) {
  let t1 = h &+ (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) &+ ((e & f) ^ (~e & g)) &+ kw
  let t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) &+ ((a & b) ^ (a & c) ^ (b & c))
  d = d &+ t1
  h = t1 &+ t2
}

@inline(__always) private func rotr(_ x: UInt32, _ n: UInt32) -> UInt32 { (x >> n) | (x << (32 - n)) }

private let roundConstants: [UInt32] = [
  0x428a_2f98, 0x7137_4491, 0xb5c0_fbcf, 0xe9b5_dba5, 0x3956_c25b, 0x59f1_11f1, 0x923f_82a4, 0xab1c_5ed5,
  0xd807_aa98, 0x1283_5b01, 0x2431_85be, 0x550c_7dc3, 0x72be_5d74, 0x80de_b1fe, 0x9bdc_06a7, 0xc19b_f174,
  0xe49b_69c1, 0xefbe_4786, 0x0fc1_9dc6, 0x240c_a1cc, 0x2de9_2c6f, 0x4a74_84aa, 0x5cb0_a9dc, 0x76f9_88da,
  0x983e_5152, 0xa831_c66d, 0xb003_27c8, 0xbf59_7fc7, 0xc6e0_0bf3, 0xd5a7_9147, 0x06ca_6351, 0x1429_2967,
  0x27b7_0a85, 0x2e1b_2138, 0x4d2c_6dfc, 0x5338_0d13, 0x650a_7354, 0x766a_0abb, 0x81c2_c92e, 0x9272_2c85,
  0xa2bf_e8a1, 0xa81a_664b, 0xc24b_8b70, 0xc76c_51a3, 0xd192_e819, 0xd699_0624, 0xf40e_3585, 0x106a_a070,
  0x19a4_c116, 0x1e37_6c08, 0x2748_774c, 0x34b0_bcb5, 0x391c_0cb3, 0x4ed8_aa4a, 0x5b9c_ca4f, 0x682e_6ff3,
  0x748f_82ee, 0x78a5_636f, 0x84c8_7814, 0x8cc7_0208, 0x90be_fffa, 0xa450_6ceb, 0xbef9_a3f7, 0xc671_78f2,
]
