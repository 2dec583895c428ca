// TensorBoard event files: CRC-32C against published vectors, TFRecord framing (every flipped bit
// caught and named, a crash's cut-short tail told apart), the Event protobuf through our reader,
// the writer's file names and flushes, rewriting on resume, and TensorBoard's own Python readers
// (EventAccumulator with a restart marker, EventFileLoader) reading what we write.
import Foundation
import TestProcesses
import Testing

@testable import AttnFormats

@Suite struct TensorBoardTests {
  // MARK: - CRC-32C

  @Test func crc32cMatchesPublishedVectors() {
    #expect(crc32c(Array("123456789".utf8)) == 0xE306_9283)  // the CRC catalogue's check value
    #expect(crc32c([]) == 0)
    // RFC 3720 (iSCSI), appendix B.4.
    #expect(crc32c([UInt8](repeating: 0, count: 32)) == 0x8A91_36AA)
    #expect(crc32c([UInt8](repeating: 0xFF, count: 32)) == 0x62A8_AB43)
    #expect(crc32c((0..<32).map { UInt8($0) }) == 0x46DD_794E)
    // TensorFlow's crc32c_test.cc: the masked CRC of a record holding a CRC test string.
    #expect(maskedCRC32C(Array("\u{1a}\u{11}CRC test, one two".utf8)) == 0x5794_D08A)
  }

  @Test func slicedCRCMatchesBytewiseReferenceAtEveryLengthAndAlignment() {
    var random = SplitMix64(seed: 7)
    let bytes = (0..<300).map { _ in UInt8(truncatingIfNeeded: random.next()) }
    for start in 0..<9 {
      for end in start...bytes.count where end - start < 40 || end == bytes.count {
        let piece = Array(bytes[start..<end])
        #expect(crc32c(piece) == crc32cBytewise(piece), "bytes \(start)..<\(end)")
      }
    }
    // Checksumming in pieces gives the checksum of the whole.
    let first = bytes.withUnsafeBytes { crc32c(UnsafeRawBufferPointer(rebasing: $0[0..<123])) }
    let whole = bytes.withUnsafeBytes { crc32c(UnsafeRawBufferPointer(rebasing: $0[123...]), continuing: first) }
    #expect(whole == crc32c(bytes))
  }

  // MARK: - TFRecord framing

  @Test func recordFramingRoundTrips() throws {
    let payloads: [[UInt8]] = [[], [42], Array("hello".utf8), (0..<1000).map { UInt8($0 % 251) }]
    var file: [UInt8] = []
    for payload in payloads { TFRecord.append(payload, to: &file) }
    #expect(file.count == payloads.map(\.count).reduce(0, +) + payloads.count * TFRecord.overhead)

    // The second record byte by byte: length, its masked CRC, data, its masked CRC (the CRCs from
    // tensorboard's own masked_crc32c).
    #expect(Array(file[16..<33]) == [1, 0, 0, 0, 0, 0, 0, 0, 1, 117, 222, 65, 42, 29, 29, 241, 141])

    let records = try TFRecords(parsing: file, file: "f")
    #expect(records.records.map { Array($0.data) } == payloads)
    #expect(records.records.map(\.offset) == [12, 28, 45, 66])
    #expect(records.truncatedTail == nil)
  }

  @Test func everyFlippedBitIsCaughtAndNamed() throws {
    var file: [UInt8] = []
    TFRecord.append(Array("first".utf8), to: &file)
    TFRecord.append(Array("second record".utf8), to: &file)
    let secondAt = 16 + 5
    for position in file.indices {
      for bit in 0..<8 {
        var damaged = file
        damaged[position] ^= 1 << bit
        let recordAt = position < secondAt ? 0 : secondAt
        let part = position - recordAt < 12 ? "length field" : "data bytes"
        expectInputError("f", ["record at byte \(recordAt):", part, "damaged"]) {
          _ = try TFRecords(parsing: damaged, file: "f")
        }
      }
    }
  }

  @Test func cutShortLastRecordIsReportedNotThrown() throws {
    var file: [UInt8] = []
    TFRecord.append(Array("first".utf8), to: &file)
    TFRecord.append(Array("second record".utf8), to: &file)
    let secondAt = 16 + 5
    for cut in 0..<file.count {
      let records = try TFRecords(parsing: Array(file[0..<cut]), file: "f")
      if cut == 0 || cut == secondAt {
        #expect(records.truncatedTail == nil)
        #expect(records.records.count == (cut == 0 ? 0 : 1))
      } else {
        let recordAt = cut < secondAt ? 0 : secondAt
        let expected = cut - recordAt < 12 ? nil : (cut < secondAt ? secondAt : file.count - secondAt)
        let tail = TruncatedRecord(offset: recordAt, bytesPresent: cut - recordAt, bytesExpected: expected)
        #expect(records.truncatedTail == tail)
        #expect(records.records.count == (cut < secondAt ? 0 : 1))
      }
    }
  }

  // MARK: - Event protobuf

  @Test func eventsRoundTripThroughOurReader() throws {
    let longTag = String(repeating: "layer/attention/q_norm/", count: 8)  // a summary over 128 bytes
    let events = [
      TensorBoardEvent(wallTime: 1_700_000_000.125, step: 0, fileVersion: "brain.Event:2"),
      TensorBoardEvent(wallTime: 0, step: 0, scalars: [TensorBoardScalar(tag: "zero", value: 0)]),
      TensorBoardEvent(
        wallTime: -1.5, step: 1,
        scalars: [
          TensorBoardScalar(tag: "loss", value: -3.25), TensorBoardScalar(tag: "nan", value: .nan),
          TensorBoardScalar(tag: "negzero", value: -0.0), TensorBoardScalar(tag: "inf", value: -.infinity),
          TensorBoardScalar(tag: "tiny", value: .leastNonzeroMagnitude), TensorBoardScalar(tag: "é/ü", value: 1),
          TensorBoardScalar(tag: "", value: 2), TensorBoardScalar(tag: longTag, value: 3),
        ]),
      TensorBoardEvent(wallTime: 2, step: 1 << 40, scalars: [TensorBoardScalar(tag: "lr", value: 6e-4)]),
      TensorBoardEvent(wallTime: 3, step: Int(Int64.max), scalars: [TensorBoardScalar(tag: "a", value: 1)]),
      TensorBoardEvent(wallTime: 4, step: -1, sessionLog: .start),
      TensorBoardEvent(wallTime: 5, step: Int(Int64.min), sessionLog: SessionLogStatus(rawValue: 2)),
      TensorBoardEvent(wallTime: .greatestFiniteMagnitude, step: 127, sessionLog: SessionLogStatus(rawValue: 0)),
    ]
    for event in events {
      let decoded = try TensorBoardEvent(decoding: event.encoded()[...], file: "f")
      #expect(decoded.wallTime.bitPattern == event.wallTime.bitPattern)
      #expect(decoded.step == event.step)
      #expect(decoded.fileVersion == event.fileVersion)
      #expect(decoded.sessionLog == event.sessionLog)
      #expect(decoded.scalars.map(\.tag) == event.scalars.map(\.tag))
      #expect(decoded.scalars.map(\.value.bitPattern) == event.scalars.map(\.value.bitPattern))
    }
    // The bytes by hand from event.proto: wall_time (field 1, fixed64), session_log (field 7, a
    // message) holding status (field 1, varint) START = 1.
    let restart = TensorBoardEvent(wallTime: 1, step: 0, sessionLog: .start).encoded()
    #expect(restart == [0x09, 0, 0, 0, 0, 0, 0, 0xF0, 0x3F, 0x3A, 0x02, 0x08, 0x01])
    // An int64 below zero is its two's complement as a varint: ten bytes.
    let negative = TensorBoardEvent(wallTime: 0, step: -1).encoded()
    #expect(Array(negative[9...]) == [0x10, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01])
  }

  @Test func unknownFieldsAreSkippedByWireType() throws {
    var value = ProtobufEncoder()
    value.string(ValueField.tag, "loss")
    value.int64(7, -5)  // unknown varint
    value.float(ValueField.simpleValue, 1.5)
    value.message(9) { $0.string(1, "scalars") }  // SummaryMetadata, not read
    var summary = ProtobufEncoder()
    summary.message(SummaryField.value) { $0.bytes += value.bytes }
    summary.message(SummaryField.value) { image in
      image.string(ValueField.tag, "image")
      image.message(4) { $0.int64(1, 3) }  // an Image, not a scalar: the entry is not kept
    }
    var event = ProtobufEncoder()
    event.double(EventField.wallTime, 9.5)
    event.double(40, 1)  // unknown fixed64
    event.float(41, 1)  // unknown fixed32
    event.string(42, "unknown bytes")
    event.message(6) { $0.string(2, "a deprecated LogMessage") }
    event.int64(EventField.step, 12)
    event.message(EventField.summary) { $0.bytes += summary.bytes }
    let decoded = try TensorBoardEvent(decoding: event.bytes[...], file: "f")
    #expect(decoded == TensorBoardEvent(wallTime: 9.5, step: 12, scalars: [TensorBoardScalar(tag: "loss", value: 1.5)]))

    // A group (wire type 3), a varint cut off and a field past the end are errors with the byte.
    expectInputError("f", ["event at byte 0", "byte 0: unsupported wire type 3"]) {
      _ = try TensorBoardEvent(decoding: [0x0B][...], file: "f")
    }
    expectInputError("f", ["byte 1: varint runs past the end"]) {
      _ = try TensorBoardEvent(decoding: [0x10, 0x80][...], file: "f")
    }
    expectInputError("f", ["byte 2: field of 5 bytes runs past the end"]) {
      _ = try TensorBoardEvent(decoding: [0x1A, 0x05, 0x61][...], file: "f")
    }
    expectInputError("f", ["Event.step has wire type 2, expected 0"]) {
      _ = try TensorBoardEvent(decoding: [0x12, 0x00][...], file: "f")
    }
  }

  // MARK: - Writer, listing, rewriting

  @Test func writerNamesFilesThatSortAfterEveryExistingOne() throws {
    let root = try makeScratchDirectory()
    defer { try? removeTree(root) }
    let dir = root + "/logs/tb"  // created by the writer
    func name(_ path: String) -> String { String(path.dropFirst(dir.count + 1)) }
    let now = 1_700_000_000.75

    // Another process's file from the same second whose host sorts later: ours moves a second on.
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    #expect(FileManager.default.createFile(atPath: dir + "/events.out.tfevents.1700000000.zzz.1.0", contents: Data()))
    var names = ["events.out.tfevents.1700000000.zzz.1.0"]
    for _ in 0..<12 {  // then the same second again and again: counters past 9 must still sort later
      let writer = try TensorBoardWriter(directory: dir, hostname: "node/7", now: now)
      try writer.close()
      names.append(name(writer.path))
    }
    #expect(names[1].hasPrefix("events.out.tfevents.1700000001.node_7.\(getpid())."))
    #expect(names == names.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) })
    #expect(Set(names).count == names.count)
    #expect(try TensorBoardEventFile.list(in: dir).map(name) == names)

    // A file from a clock ahead of ours: the new name takes its second, or the one after.
    #expect(FileManager.default.createFile(atPath: dir + "/events.out.tfevents.2000000000.zzz.99.0", contents: Data()))
    let later = try TensorBoardWriter(directory: dir, hostname: "aaa", now: now)
    try later.close()
    #expect(name(later.path).hasPrefix("events.out.tfevents.2000000001.aaa.\(getpid())."))
    #expect(try TensorBoardEventFile.list(in: dir).last == later.path)

    let file = try TensorBoardEventFile(path: later.path)
    #expect(file.events == [TensorBoardEvent(wallTime: now, step: 0, fileVersion: "brain.Event:2")])
  }

  @Test func flushMakesEventsVisibleWhileTheWriterStaysOpen() throws {
    let dir = try makeScratchDirectory()
    defer { try? removeTree(dir) }
    let writer = try TensorBoardWriter(directory: dir, now: 100)
    writer.add(scalars: [(tag: "loss", value: 2.5), (tag: "lr", value: 1e-3)], step: 10, wallTime: 101)
    #expect(try TensorBoardEventFile(path: writer.path).events.count == 1)  // still in memory
    try writer.flush()
    writer.markRestart(atStep: 5, wallTime: 102)
    writer.add(scalars: [(tag: "loss", value: 1e300)], step: 5, wallTime: 103)  // past float32: +inf
    try writer.flush()
    let events = try TensorBoardEventFile(path: writer.path).events
    #expect(
      Array(events.dropFirst()) == [
        TensorBoardEvent(
          wallTime: 101, step: 10,
          scalars: [TensorBoardScalar(tag: "loss", value: 2.5), TensorBoardScalar(tag: "lr", value: Float(1e-3))]),
        TensorBoardEvent(wallTime: 102, step: 5, sessionLog: .start),
        TensorBoardEvent(wallTime: 103, step: 5, scalars: [TensorBoardScalar(tag: "loss", value: .infinity)]),
      ])
    try writer.close()
  }

  @Test func readerNamesFileAndOffsetOfDamageAndOfACutShortTail() throws {
    let dir = try makeScratchDirectory()
    defer { try? removeTree(dir) }
    let writer = try TensorBoardWriter(directory: dir, now: 100)
    writer.add(scalars: [(tag: "loss", value: 2)], step: 1, wallTime: 101)
    try writer.close()
    let bytes = try Data(contentsOf: URL(fileURLWithPath: writer.path))
    let secondAt = Int(bytes.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }) + 16

    var damaged = bytes
    damaged[secondAt + 14] ^= 0x40
    try damaged.write(to: URL(fileURLWithPath: writer.path))
    expectInputError(writer.path, ["record at byte \(secondAt)", "data bytes", "does not match"]) {
      _ = try TensorBoardEventFile(path: writer.path, allowTruncatedTail: true)
    }

    try bytes.prefix(bytes.count - 1).write(to: URL(fileURLWithPath: writer.path))
    expectInputError(writer.path, ["the last record, at byte \(secondAt), is cut short", "crash"]) {
      _ = try TensorBoardEventFile(path: writer.path)
    }
    let tolerant = try TensorBoardEventFile(path: writer.path, allowTruncatedTail: true)
    #expect(tolerant.events.map(\.step) == [0])
    #expect(tolerant.truncatedTail?.offset == secondAt)
  }

  @Test func rewriteKeepsTheStepsThroughTheResumePointAndDropsACrashTail() throws {
    let dir = try makeScratchDirectory()
    defer { try? removeTree(dir) }
    let writer = try TensorBoardWriter(directory: dir, now: 100)
    for step in stride(from: 10, through: 100, by: 10) {
      writer.add(scalars: [(tag: "loss", value: Double(step))], step: step, wallTime: 100 + Double(step))
    }
    try writer.close()
    let whole = try Data(contentsOf: URL(fileURLWithPath: writer.path))
    try whole.prefix(whole.count - 3).write(to: URL(fileURLWithPath: writer.path))  // the crash

    let outcome = try TensorBoardEventFile.rewrite(path: writer.path, keepingStepsThrough: 40)
    #expect(outcome == .init(kept: 5, dropped: 5, droppedTruncatedTail: true))  // steps 50...90 and the torn 100
    let file = try TensorBoardEventFile(path: writer.path)
    #expect(file.events.map(\.step) == [0, 10, 20, 30, 40])
    #expect(file.events.first?.fileVersion == "brain.Event:2")
    #expect(file.events.last?.scalars == [TensorBoardScalar(tag: "loss", value: 40)])
    #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == [String(writer.path.dropFirst(dir.count + 1))])

    // Nothing to drop: the file is left alone (same inode, so not rewritten).
    let inode = try FileManager.default.attributesOfItem(atPath: writer.path)[.systemFileNumber] as? NSNumber
    let again = try TensorBoardEventFile.rewrite(path: writer.path, keepingStepsThrough: 40)
    #expect(again == .init(kept: 5, dropped: 0, droppedTruncatedTail: false))
    #expect(try FileManager.default.attributesOfItem(atPath: writer.path)[.systemFileNumber] as? NSNumber == inode)
  }

  @Test func listTakesTensorBoardsFilesInNameOrder() throws {
    let dir = try makeScratchDirectory()
    defer { try? removeTree(dir) }
    let names = ["b.tfevents.2", "a.tfevents.1", "events.out.tfevents.1", "metrics.jsonl", ".rewrite-1-2.tmp", "Z.tfevents"]
    for name in names {
      #expect(FileManager.default.createFile(atPath: dir + "/" + name, contents: Data()))
    }
    #expect(
      try TensorBoardEventFile.list(in: dir)
        == ["Z.tfevents", "a.tfevents.1", "b.tfevents.2", "events.out.tfevents.1"].map { dir + "/" + $0 })
    #expect(try TensorBoardEventFile.list(in: dir + "/missing") == [])
  }

  // MARK: - TensorBoard's own readers

  @Test func tensorBoardReadsOurFilesAndPurgesStepsAfterARestart() throws {
    guard (try? python3("import tensorboard", [], timeout: 60)) != nil else {
      Issue.record("python3 cannot import tensorboard: run launch/setup.sh --python")
      return
    }
    let dir = try makeScratchDirectory()
    defer { try? removeTree(dir) }
    let start = 1_700_000_000.5
    // The first run logs steps 0...40; it is lost after step 20 and resumed there in a second file,
    // started in the same second (so the name order, not the clock, keeps it second).
    let first = try TensorBoardWriter(directory: dir, hostname: "host", now: start)
    var written: [(step: Int, wallTime: Double, scalars: [(tag: String, value: Double)])] = []
    for step in stride(from: 0, through: 40, by: 10) {
      var scalars = [
        (tag: "train/loss", value: 5 - Double(step) / 7), (tag: "train/lr", value: -1e-4 * Double(step + 1)),
      ]
      if step % 20 == 10 { scalars.append((tag: "dev/accuracy", value: Double(step) / 100)) }
      written.append((step, start + Double(step) * 1.001, scalars))
    }
    for entry in written { first.add(scalars: entry.scalars, step: entry.step, wallTime: entry.wallTime) }
    try first.close()

    let second = try TensorBoardWriter(directory: dir, hostname: "host", now: start)
    second.markRestart(atStep: 20, wallTime: start + 100)
    let resumed: [(step: Int, wallTime: Double, scalars: [(tag: String, value: Double)])] = [
      (20, start + 101, [(tag: "train/loss", value: 0.25), (tag: "train/lr", value: .nan)]),
      (30, start + 102, [(tag: "train/loss", value: -0.0), (tag: "train/lr", value: 3e38)]),
    ]
    for entry in resumed { second.add(scalars: entry.scalars, step: entry.step, wallTime: entry.wallTime) }
    try second.flush()  // not closed: TensorBoard reads a file still being written

    // What TensorBoard should show: the first run below step 20, then the resumed one.
    var expected: [String: [JSONValueish]] = [:]
    for entry in written.filter({ $0.step < 20 }) + resumed {
      for scalar in entry.scalars {
        expected[scalar.tag, default: []].append(
          .array([.number(Double(entry.step)), float32Bits(scalar.value), float64Bits(entry.wallTime)]))
      }
    }

    let script = """
      import json, os, struct, sys
      from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
      from tensorboard.backend.event_processing.event_file_loader import EventFileLoader, LegacyEventFileLoader
      from tensorboard.util import tensor_util
      d = sys.argv[1]
      f32 = lambda v: struct.unpack('<I', struct.pack('<f', v))[0]
      f64 = lambda v: format(struct.unpack('<Q', struct.pack('<d', v))[0], '016x')
      ea = EventAccumulator(d, size_guidance={'scalars': 0})
      ea.Reload()
      scalars = {t: [[e.step, f32(e.value), f64(e.wall_time)] for e in ea.Scalars(t)] for t in ea.Tags()['scalars']}
      # LegacyEventFileLoader yields the protos as parsed; EventFileLoader, what TensorBoard serves
      # from, also migrates each simple_value into a scalar tensor.
      def value(v):
          if v.WhichOneof('value') == 'simple_value':
              return f32(v.simple_value)
          return f32(tensor_util.make_ndarray(v.tensor).item())
      def describe(ev):
          what = ev.WhichOneof('what')
          detail = {'file_version': lambda: ev.file_version,
                    'summary': lambda: [[v.tag, value(v)] for v in ev.summary.value],
                    'session_log': lambda: ev.session_log.status}[what]()
          return [f64(ev.wall_time), ev.step, what, detail]
      files = []
      for name in sorted(n for n in os.listdir(d) if 'tfevents' in n):
          path = os.path.join(d, name)
          legacy = [describe(ev) for ev in LegacyEventFileLoader(path).Load()]
          migrated = [describe(ev) for ev in EventFileLoader(path).Load()]
          files.append([name, legacy, migrated])
      print(json.dumps({'scalars': scalars, 'files': files}))
      """
    let output = try python3(script, [dir], timeout: 120)
    struct Read: Decodable {
      let scalars: [String: [JSONValueish]]
      let files: [[JSONValueish]]
    }
    let read = try JSONDecoder().decode(Read.self, from: Data(output.utf8))
    #expect(read.scalars == expected)

    // Each file's events as TensorBoard's loaders parse them, file by file in name order.
    func summary(_ scalars: [(tag: String, value: Double)]) -> JSONValueish {
      .array(scalars.map { .array([.string($0.tag), float32Bits($0.value)]) })
    }
    func event(_ wallTime: Double, _ step: Int, _ what: String, _ detail: JSONValueish) -> JSONValueish {
      .array([float64Bits(wallTime), .number(Double(step)), .string(what), detail])
    }
    let version = event(start, 0, "file_version", .string("brain.Event:2"))
    let firstEvents = [version] + written.map { event($0.wallTime, $0.step, "summary", summary($0.scalars)) }
    let secondEvents =
      [version, event(start + 100, 20, "session_log", .number(1))]
      + resumed.map { event($0.wallTime, $0.step, "summary", summary($0.scalars)) }
    #expect(read.files.count == 2)
    let firstName = JSONValueish.string(String(first.path.dropFirst(dir.count + 1)))
    let secondName = JSONValueish.string(String(second.path.dropFirst(dir.count + 1)))
    #expect(read.files.first == [firstName, .array(firstEvents), .array(firstEvents)])
    #expect(read.files.last == [secondName, .array(secondEvents), .array(secondEvents)])
    try second.close()
  }
}

// MARK: - Helpers

/// Enough of JSON to compare Python's nested lists. Floats travel as bit patterns so NaN and -0.0
/// compare exactly: a float32's as a number (exact in a double), a float64's as 16 hex digits.
private indirect enum JSONValueish: Decodable, Equatable {
  case number(Double)
  case string(String)
  case array([JSONValueish])

  init(from decoder: Decoder) throws {
    let container = try decoder.singleValueContainer()
    if let number = try? container.decode(Double.self) {
      self = .number(number)
    } else if let text = try? container.decode(String.self) {
      self = .string(text)
    } else {
      self = .array(try container.decode([JSONValueish].self))
    }
  }
}

/// What TensorBoard holds for a value we log: its float32, as a bit pattern.
private func float32Bits(_ value: Double) -> JSONValueish {
  .number(Double(Float(value).bitPattern))
}

private func float64Bits(_ value: Double) -> JSONValueish {
  let hex = String(value.bitPattern, radix: 16)
  return .string(String(repeating: "0", count: 16 - hex.count) + hex)
}

private func expectInputError(
  _ file: String, _ fragments: [String], sourceLocation: SourceLocation = #_sourceLocation, _ body: () throws -> Void
) {
  do {
    try body()
    Issue.record("expected an InputError containing \(fragments)", sourceLocation: sourceLocation)
  } catch let error as InputError {
    #expect(error.file == file, sourceLocation: sourceLocation)
    for fragment in fragments {
      #expect(error.description.contains(fragment), "\(error)", sourceLocation: sourceLocation)
    }
  } catch {
    Issue.record("expected InputError, got \(type(of: error)): \(error)", sourceLocation: sourceLocation)
  }
}

private func makeScratchDirectory() throws -> String {
  let dir = (NSTemporaryDirectory() as NSString).appendingPathComponent("attn-tensorboard-" + UUID().uuidString)
  try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
  return dir
}

/// Deterministic so a failing case can be replayed.
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
