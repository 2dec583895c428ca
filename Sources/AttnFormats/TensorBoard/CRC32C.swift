// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum TFRecord files carry, and the
// mask TensorFlow applies to it (a CRC stored beside the data it covers is "masked" so that a CRC
// of bytes that themselves hold CRCs does not degenerate). Slice-by-8: eight 256-entry tables let
// the loop consume eight bytes per step; `crc32cBytewise` beside it is the one-table reference the
// tests hold it to.

/// tables[k * 256 + b]: the CRC contribution of byte `b` followed by `k` zero bytes.
private let sliceTables: [UInt32] = {
  var tables = [UInt32](repeating: 0, count: 8 * 256)
  for byte in 0..<256 {
    var crc = UInt32(byte)
    for _ in 0..<8 { crc = (crc >> 1) ^ (crc & 1 == 0 ? 0 : 0x82F6_3B78) }
    tables[byte] = crc
  }
  for k in 1..<8 {
    for byte in 0..<256 {
      let previous = tables[(k - 1) * 256 + byte]
      tables[k * 256 + byte] = (previous >> 8) ^ tables[Int(previous & 0xFF)]
    }
  }
  return tables
}()

/// CRC-32C of `bytes`; pass a previous result as `continuing` to checksum data given in pieces.
public func crc32c(_ bytes: UnsafeRawBufferPointer, continuing previous: UInt32 = 0) -> UInt32 {
  var crc = ~previous
  var i = 0
  let n = bytes.count
  sliceTables.withUnsafeBufferPointer { t in
    while n - i >= 8 {
      let low = crc ^ bytes.loadUnaligned(fromByteOffset: i, as: UInt32.self).littleEndian
      crc = t[7 * 256 + Int(low & 0xFF)] ^ t[6 * 256 + Int((low >> 8) & 0xFF)]
        ^ t[5 * 256 + Int((low >> 16) & 0xFF)] ^ t[4 * 256 + Int(low >> 24)]
        ^ t[3 * 256 + Int(bytes[i + 4])] ^ t[2 * 256 + Int(bytes[i + 5])]
        ^ t[1 * 256 + Int(bytes[i + 6])] ^ t[Int(bytes[i + 7])]
      i += 8
    }
    while i < n {
      crc = (crc >> 8) ^ t[Int((crc ^ UInt32(bytes[i])) & 0xFF)]
      i += 1
    }
  }
  return ~crc
}

public func crc32c(_ bytes: [UInt8]) -> UInt32 {
  bytes.withUnsafeBytes { crc32c($0) }
}

/// The plain one-byte-at-a-time CRC-32C, bit by bit: the reference for the sliced version.
public func crc32cBytewise(_ bytes: [UInt8]) -> UInt32 {
  var crc: UInt32 = 0xFFFF_FFFF
  for byte in bytes {
    crc ^= UInt32(byte)
    for _ in 0..<8 { crc = (crc >> 1) ^ (crc & 1 == 0 ? 0 : 0x82F6_3B78) }
  }
  return ~crc
}

/// TensorFlow's masking of a stored CRC (`crc32c::Mask` in tensorflow/core/lib/hash/crc32c.h).
public func maskCRC32C(_ crc: UInt32) -> UInt32 {
  ((crc >> 15) | (crc << 17)) &+ 0xA282_EAD8
}

/// The masked CRC-32C of `bytes`: what a TFRecord stores after its length and after its data.
public func maskedCRC32C(_ bytes: UnsafeRawBufferPointer) -> UInt32 {
  maskCRC32C(crc32c(bytes))
}

public func maskedCRC32C(_ bytes: [UInt8]) -> UInt32 {
  maskCRC32C(crc32c(bytes))
}
