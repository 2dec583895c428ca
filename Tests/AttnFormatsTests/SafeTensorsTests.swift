// Safetensors: a round trip through our writer and reader, every malformed-header fault the
// reader must reject (each error naming the file), a fuzz pass that must never trap, and both
// directions of interoperability with Python's `safetensors` when it is installed.
import Foundation
import TestProcesses
import Testing

import AttnFormats

@Suite struct SafeTensorsTests {
  @Test func roundTripKeepsNamesShapesValuesAndMetadata() throws {
    let dir = try makeScratchDirectory()
    defer { try? removeTree(dir) }
    let path = dir + "/model.safetensors"
    let wte = (0..<12).map { Float($0) * 0.5 - 2.25 }
    let bias: [Float] = [.pi, -0.0, .greatestFiniteMagnitude, .leastNonzeroMagnitude]
    let metadata = ["step": "100", "config": "{\"n_layer\": 2}\n\tüñí \u{1}"]
    var writer = SafeTensorsWriter(metadata: metadata)
    try wte.withUnsafeBufferPointer { wtePtr in
      writer.add("wte", shape: [3, 4], wtePtr)  // pointer form: not copied, valid until write returns
      writer.add("tokens", shape: [5], [Int32(1), -2, 3, .max, .min])
      writer.add("empty", shape: [0, 4], [Float]())
      writer.add("steps", shape: [2], [Int64(7), -9])
      writer.add("ln.bias", shape: [4], bias)
      try writer.write(to: path)
    }

    // The reference implementation pads the header so the data starts 8-byte aligned.
    let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
    let headerLength = bytes.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
    #expect(headerLength % 8 == 0)

    let file = try SafeTensorsFile(path: path)
    #expect(file.names == ["wte", "tokens", "empty", "steps", "ln.bias"])
    #expect(file.metadata == metadata)
    #expect(file.shape(of: "wte") == [3, 4])
    #expect(file.shape(of: "empty") == [0, 4])
    #expect(file.dtype(of: "tokens") == .i32)
    #expect(file.dtype(of: "steps") == .i64)
    #expect(file.shape(of: "missing") == nil)
    #expect(try file.floats("wte") == wte)
    #expect(try file.floats("empty") == [])
    #expect(try file.int32s("tokens") == [1, -2, 3, .max, .min])
    #expect(try file.int32s("steps") == [7, -9])
    let readBias = try file.floats("ln.bias")
    #expect(readBias.map(\.bitPattern) == bias.map(\.bitPattern))  // bit-exact, including -0.0

    var into = [Float](repeating: .nan, count: 12)
    try into.withUnsafeMutableBufferPointer { try file.readFloats("wte", into: $0) }
    #expect(into == wte)
  }

  @Test func readErrorsNameTheFileAndTheProblem() throws {
    let dir = try makeScratchDirectory()
    defer { try? removeTree(dir) }
    let path = dir + "/x.safetensors"
    var writer = SafeTensorsWriter()
    writer.add("w", shape: [2], [Float(1), 2])
    writer.add("ids", shape: [1], [Int32(3)])
    writer.add("big", shape: [1], [Int64(1) << 40])
    try writer.write(to: path)
    let file = try SafeTensorsFile(path: path)

    expectError(path, "no tensor named 'nope'") { _ = try file.floats("nope") }
    expectError(path, "tensor 'ids' has dtype I32, expected F32") { _ = try file.floats("ids") }
    expectError(path, "expected I32 or I64") { _ = try file.int32s("w") }
    expectError(path, "does not fit in Int32") { _ = try file.int32s("big") }
    expectError(path, "has 2 elements") {
      var small = [Float](repeating: 0, count: 1)
      try small.withUnsafeMutableBufferPointer { try file.readFloats("w", into: $0) }
    }
  }

  @Test func writerRejectsInconsistentTensorsBeforeTouchingTheFile() throws {
    let dir = try makeScratchDirectory()
    defer { try? removeTree(dir) }
    let path = dir + "/bad.safetensors"
    var shapeMismatch = SafeTensorsWriter()
    shapeMismatch.add("w", shape: [2, 2], [Float(1), 2, 3])
    expectError(path, "does not hold the 3 elements") { try shapeMismatch.write(to: path) }
    var duplicate = SafeTensorsWriter()
    duplicate.add("w", shape: [1], [Float(1)])
    duplicate.add("w", shape: [1], [Float(2)])
    expectError(path, "added twice") { try duplicate.write(to: path) }
    #expect(!FileManager.default.fileExists(atPath: path))
  }

  /// A bad file, built byte by byte, and the phrase its error must contain.
  struct Malformed: Sendable, CustomTestStringConvertible {
    let label: String
    let bytes: [UInt8]
    let fragment: String
    var testDescription: String { label }

    /// A file whose header is `json` (its length field overridden by `length`), then 16 data bytes.
    init(_ label: String, _ json: String, length: UInt64? = nil, _ fragment: String) {
      var bytes = withUnsafeBytes(of: (length ?? UInt64(json.utf8.count)).littleEndian, Array.init)
      bytes += Array(json.utf8) + [UInt8](repeating: 0, count: 16)
      self.init(label, raw: bytes, fragment)
    }

    init(_ label: String, raw: [UInt8], _ fragment: String) {
      self.label = label
      bytes = raw
      self.fragment = fragment
    }
  }

  static let malformed: [Malformed] = [
    .init("file shorter than 8 bytes", raw: [1, 2, 3, 4, 5], "too short for the 8-byte header length"),
    .init("header length past the end", #"{}"#, length: 9_999_999, "header length 9999999 exceeds the file size"),
    .init("absurd header length", #"{}"#, length: 1 << 62, "over the 100 MB limit"),
    .init("empty header", "", "not valid JSON"),
    .init("header not UTF-8", raw: header([0x7b, 0xff, 0xfe, 0x7d]), "not valid UTF-8"),
    .init("header JSON garbage", #"{"w": {"dtype": "F32", "#, "not valid JSON"),
    .init("header not an object", #"[1, 2, 3]"#, "not a JSON object"),
    .init("entry not an object", #"{"w": 5}"#, "tensor 'w': entry is not a JSON object"),
    .init("missing dtype", #"{"w": {"shape": [2], "data_offsets": [0, 8]}}"#, #"tensor 'w': missing field "dtype""#),
    .init("missing shape", #"{"w": {"dtype": "F32", "data_offsets": [0, 8]}}"#, #"missing field "shape""#),
    .init("missing offsets", #"{"w": {"dtype": "F32", "shape": [2]}}"#, #"missing field "data_offsets""#),
    .init("dtype not a string", #"{"w": {"dtype": 4, "shape": [2], "data_offsets": [0, 8]}}"#, #"field "dtype" must be a string"#),
    .init("shape not an array", #"{"w": {"dtype": "F32", "shape": "2", "data_offsets": [0, 8]}}"#, #"field "shape" must be"#),
    .init("shape of booleans", #"{"w": {"dtype": "F32", "shape": [true], "data_offsets": [0, 4]}}"#, #"field "shape" must be"#),
    .init("fractional offset", #"{"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8.5]}}"#, #"field "data_offsets" must be"#),
    .init("one offset", #"{"w": {"dtype": "F32", "shape": [2], "data_offsets": [8]}}"#, "data_offsets must be [begin, end]"),
    .init("unknown dtype", #"{"w": {"dtype": "F33", "shape": [2], "data_offsets": [0, 8]}}"#, "unknown dtype 'F33'"),
    .init("negative dimension", #"{"w": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}}"#, "negative dimension"),
    .init("overflowing shape", #"{"w": {"dtype": "F32", "shape": [4294967296, 4294967296], "data_offsets": [0, 8]}}"#, "overflowing product"),
    .init("overflowing bytes", #"{"w": {"dtype": "F32", "shape": [4611686018427387904], "data_offsets": [0, 8]}}"#, "overflows a byte count"),
    .init("begin after end", #"{"w": {"dtype": "F32", "shape": [2], "data_offsets": [8, 0]}}"#, "are not 0 <= begin <= end"),
    .init("negative begin", #"{"w": {"dtype": "F32", "shape": [2], "data_offsets": [-4, 4]}}"#, "are not 0 <= begin <= end"),
    .init("offsets past the data", #"{"w": {"dtype": "F32", "shape": [4], "data_offsets": [8, 24]}}"#, "run past the 16-byte data area"),
    .init("offsets not the shape's size", #"{"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}"#, "span 8 bytes but shape [3] of F32 needs 12"),
    .init("overlapping tensors", #"{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "b": {"dtype": "I32", "shape": [2], "data_offsets": [4, 12]}}"#, "tensors 'a' and 'b' overlap"),
    .init("metadata value not a string", #"{"__metadata__": {"step": 5}}"#, "__metadata__ must be an object whose values are all strings"),
    .init("metadata not an object", #"{"__metadata__": "x"}"#, "__metadata__ must be an object"),
  ]

  @Test(arguments: malformed) func malformedFileIsRejectedWithItsPath(_ bad: Malformed) throws {
    let dir = try makeScratchDirectory()
    defer { try? removeTree(dir) }
    let path = dir + "/ckpt/model.safetensors"
    try FileManager.default.createDirectory(atPath: dir + "/ckpt", withIntermediateDirectories: true)
    try Data(bad.bytes).write(to: URL(fileURLWithPath: path))
    expectError(path, bad.fragment) { _ = try SafeTensorsFile(path: path) }
  }

  @Test func truncatedCheckpointIsRejected() throws {
    let dir = try makeScratchDirectory()
    defer { try? removeTree(dir) }
    let path = dir + "/model.safetensors"
    var writer = SafeTensorsWriter()
    writer.add("w", shape: [64], [Float](repeating: 1, count: 64))
    try writer.write(to: path)
    #expect(truncate(path, off_t(try fileSize(path) - 4)) == 0)
    expectError(path, "run past the 252-byte data area (truncated file?)") { _ = try SafeTensorsFile(path: path) }
  }

  /// Random byte flips in the header and every truncation of a valid file must each either load
  /// or throw SafeTensorsError; a trap here would kill a training job resuming from a bad file.
  @Test func corruptedFilesNeverTrap() throws {
    let dir = try makeScratchDirectory()
    defer { try? removeTree(dir) }
    let path = dir + "/model.safetensors"
    var writer = SafeTensorsWriter(metadata: ["k": "v"])
    writer.add("a", shape: [2, 3], [Float](repeating: 0.5, count: 6))
    writer.add("b", shape: [4], [Int32](repeating: 7, count: 4))
    writer.add("c", shape: [0], [Float]())
    try writer.write(to: path)
    let good = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
    let headerEnd = 8 + Int(good.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })

    var rng = SplitMix64(seed: 42)
    var candidates: [[UInt8]] = [good] + (0..<good.count).map { Array(good.prefix($0)) }
    for _ in 0..<500 {
      var bytes = good
      for _ in 0..<Int.random(in: 1...3, using: &rng) {
        bytes[Int.random(in: 0..<headerEnd, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
      }
      candidates.append(bytes)
    }
    var loaded = 0
    for bytes in candidates {
      try Data(bytes).write(to: URL(fileURLWithPath: path))
      do {
        let file = try SafeTensorsFile(path: path)
        for name in file.names {
          if file.dtype(of: name) == .f32 { _ = try file.floats(name) }
          if file.dtype(of: name) == .i32 || file.dtype(of: name) == .i64 { _ = try file.int32s(name) }
        }
        loaded += 1
      } catch is SafeTensorsError {
      }
    }
    #expect(loaded >= 1)  // the untouched file, at least
  }

  // MARK: - Python interoperability

  @Test(.enabled(if: pythonHasSafetensors, "python3 with safetensors and numpy is not installed"))
  func pythonLoadsWhatWeWrite() throws {
    let dir = try makeScratchDirectory()
    defer { try? removeTree(dir) }
    let path = dir + "/ours.safetensors"
    let w = (0..<6).map { Float($0) / 3 - 1 }
    var writer = SafeTensorsWriter(metadata: ["step": "12", "note": "quote \" and é"])
    writer.add("h.0.w", shape: [2, 3], w)
    writer.add("ids", shape: [3], [Int32(5), -1, .max])
    writer.add("none", shape: [0], [Float]())
    writer.add("count", shape: [1], [Int64(1) << 40])
    try writer.write(to: path)

    let script = """
      import json, sys
      from safetensors import safe_open
      from safetensors.numpy import load_file
      t = load_file(sys.argv[1])
      with safe_open(sys.argv[1], framework="np") as f:
          meta = f.metadata()
      print(json.dumps({"metadata": meta, "tensors": {k: {"dtype": str(v.dtype), "shape": list(v.shape),
          "values": v.ravel().tolist()} for k, v in t.items()}}))
      """
    let out = try python3(script, [path])
    struct Loaded: Decodable {
      struct Tensor: Decodable { let dtype: String; let shape: [Int]; let values: [Double] }
      let metadata: [String: String]
      let tensors: [String: Tensor]
    }
    let loaded = try JSONDecoder().decode(Loaded.self, from: Data(out.utf8))
    #expect(loaded.metadata == ["step": "12", "note": "quote \" and é"])
    #expect(Set(loaded.tensors.keys) == ["h.0.w", "ids", "none", "count"])
    #expect(loaded.tensors["h.0.w"]?.dtype == "float32")
    #expect(loaded.tensors["h.0.w"]?.shape == [2, 3])
    #expect(loaded.tensors["h.0.w"]?.values.map { Float($0) } == w)  // float32 -> double -> float is exact
    #expect(loaded.tensors["ids"]?.dtype == "int32")
    #expect(loaded.tensors["ids"]?.values == [5, -1, 2_147_483_647])
    #expect(loaded.tensors["none"]?.shape == [0])
    #expect(loaded.tensors["count"]?.dtype == "int64")
    #expect(loaded.tensors["count"]?.values == [1_099_511_627_776])
  }

  @Test(.enabled(if: pythonHasSafetensors, "python3 with safetensors and numpy is not installed"))
  func weReadWhatPythonWrites() throws {
    let dir = try makeScratchDirectory()
    defer { try? removeTree(dir) }
    let path = dir + "/theirs.safetensors"
    let script = """
      import json, struct, sys
      import numpy as np
      from safetensors.numpy import save_file
      save_file({
          "b.weight": np.arange(12, dtype=np.float32).reshape(3, 4) * np.float32(0.25) - np.float32(1),
          "a.ids": np.array([1, -2, 3], dtype=np.int32),
          "c.long": np.array([7, 2**31 - 1, -2**31], dtype=np.int64),
          "z.empty": np.zeros((0, 3), dtype=np.float32),
      }, sys.argv[1], metadata={"format": "np", "note": "h\\u00e9llo \\"q\\""})
      raw = open(sys.argv[1], "rb").read()
      header = json.loads(raw[8:8 + struct.unpack("<Q", raw[:8])[0]])
      header.pop("__metadata__", None)
      print(json.dumps(sorted(header, key=lambda k: (header[k]["data_offsets"], k))))
      """
    let order = try JSONDecoder().decode([String].self, from: Data(try python3(script, [path]).utf8))

    let file = try SafeTensorsFile(path: path)
    #expect(file.names == order)
    #expect(file.metadata == ["format": "np", "note": "h\u{e9}llo \"q\""])
    #expect(file.shape(of: "b.weight") == [3, 4])
    #expect(try file.floats("b.weight") == (0..<12).map { Float($0) * 0.25 - 1 })
    #expect(try file.int32s("a.ids") == [1, -2, 3])
    #expect(file.dtype(of: "c.long") == .i64)
    #expect(try file.int32s("c.long") == [7, .max, .min])
    #expect(file.shape(of: "z.empty") == [0, 3])
    #expect(try file.floats("z.empty") == [])
  }
}

// MARK: - Helpers

/// A length-prefixed raw header followed by 16 data bytes.
private func header(_ raw: [UInt8]) -> [UInt8] {
  withUnsafeBytes(of: UInt64(raw.count).littleEndian, Array.init) + raw + [UInt8](repeating: 0, count: 16)
}

private func expectError(
  _ path: String, _ fragment: String, sourceLocation: SourceLocation = #_sourceLocation,
  _ body: () throws -> Void
) {
  do {
    try body()
    Issue.record("expected a SafeTensorsError containing \"\(fragment)\"", sourceLocation: sourceLocation)
  } catch let error as SafeTensorsError {
    #expect(error.path == path, sourceLocation: sourceLocation)
    #expect(error.description.hasPrefix(path + ": "), sourceLocation: sourceLocation)
    #expect(error.description.contains(fragment), "\(error)", sourceLocation: sourceLocation)
  } catch {
    Issue.record("expected SafeTensorsError, got \(type(of: error)): \(error)", sourceLocation: sourceLocation)
  }
}

private func makeScratchDirectory() throws -> String {
  let dir = (NSTemporaryDirectory() as NSString).appendingPathComponent("attn-safetensors-" + UUID().uuidString)
  try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
  return dir
}

private func fileSize(_ path: String) throws -> Int {
  (try FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber)?.intValue ?? -1
}

/// Deterministic so a failing corruption case can be replayed.
private struct SplitMix64: RandomNumberGenerator {
  var state: UInt64
  init(seed: UInt64) { state = seed }
  mutating func next() -> UInt64 {
    state &+= 0x9E37_79B9_7F4A_7C15
    var z = state
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
  }
}

private let pythonHasSafetensors: Bool = (try? python3("import safetensors, numpy", [])) != nil
