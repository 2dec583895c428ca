// One `Event` of tensorflow/core/util/event.proto, as much of it as a scalar log uses:
//   Event      { double wall_time = 1; int64 step = 2;
//                oneof what { string file_version = 3; Summary summary = 5; SessionLog session_log = 7; ... } }
//   Summary    { repeated Value value = 1; }
//   Value      { string tag = 1; oneof value { float simple_value = 2; ... } }
//   SessionLog { SessionStatus status = 1; ... }   where START = 1
// (6 is the deprecated log_message.) Fields this file does not name (images, histograms, tensors,
// ...) are skipped when read.

public struct TensorBoardScalar: Equatable, Sendable {
  public var tag: String
  public var value: Float

  public init(tag: String, value: Float) {
    self.tag = tag
    self.value = value
  }
}

/// SessionLog.status. START tells TensorBoard that a run restarted at this event's step: it discards
/// every event it has read with a step at or after it.
public struct SessionLogStatus: RawRepresentable, Equatable, Sendable {
  public let rawValue: Int
  public init(rawValue: Int) { self.rawValue = rawValue }

  public static let start = SessionLogStatus(rawValue: 1)
}

public struct TensorBoardEvent: Equatable, Sendable {
  /// Seconds since the Unix epoch.
  public var wallTime: Double
  public var step: Int
  /// "brain.Event:2" in a file's first event.
  public var fileVersion: String?
  public var sessionLog: SessionLogStatus?
  /// The summary's simple_value entries, in file order; values of other kinds are not kept.
  public var scalars: [TensorBoardScalar]

  public init(
    wallTime: Double, step: Int, fileVersion: String? = nil, sessionLog: SessionLogStatus? = nil,
    scalars: [TensorBoardScalar] = []
  ) {
    self.wallTime = wallTime
    self.step = step
    self.fileVersion = fileVersion
    self.sessionLog = sessionLog
    self.scalars = scalars
  }

  /// The event's protobuf bytes (a summary is written only when there are scalars).
  public func encoded() -> [UInt8] {
    var encoder = ProtobufEncoder()
    encoder.event(wallTime: wallTime, step: step)
    if let fileVersion { encoder.string(EventField.fileVersion, fileVersion) }
    if !scalars.isEmpty { encoder.summary(scalars.lazy.map { ($0.tag, $0.value) }) }
    if let sessionLog { encoder.sessionLog(sessionLog) }
    return encoder.bytes
  }

  /// Decodes one event; errors name `file` and the byte offset (an index into `data`'s base array,
  /// so a file offset when `data` was cut from the whole file).
  public init(decoding data: ArraySlice<UInt8>, file: String) throws {
    do {
      self = try TensorBoardEvent(decoding: data)
    } catch let error as ProtobufError {
      throw InputError(file: file, problem: "event at byte \(data.startIndex): byte \(error.offset): \(error.problem)")
    }
  }

  private init(decoding data: ArraySlice<UInt8>) throws {
    self.init(wallTime: 0, step: 0)
    var reader = ProtobufReader(data)
    while let (field, type) = try reader.nextKey() {
      switch field {
      case EventField.wallTime:
        try reader.expect(type, .fixed64, field: "Event.wall_time")
        wallTime = Double(bitPattern: try reader.fixed64())
      case EventField.step:
        try reader.expect(type, .varint, field: "Event.step")
        step = Int(Int64(bitPattern: try reader.varint()))
      case EventField.fileVersion:
        try reader.expect(type, .lengthDelimited, field: "Event.file_version")
        fileVersion = try reader.string()
      case EventField.summary:
        try reader.expect(type, .lengthDelimited, field: "Event.summary")
        scalars += try Self.scalars(inSummary: try reader.lengthDelimited())
      case EventField.sessionLog:
        try reader.expect(type, .lengthDelimited, field: "Event.session_log")
        sessionLog = try Self.status(inSessionLog: try reader.lengthDelimited())
      default:
        try reader.skip(type)
      }
    }
  }

  private static func scalars(inSummary data: ArraySlice<UInt8>) throws -> [TensorBoardScalar] {
    var scalars: [TensorBoardScalar] = []
    var reader = ProtobufReader(data)
    while let (field, type) = try reader.nextKey() {
      guard field == SummaryField.value else {
        try reader.skip(type)
        continue
      }
      try reader.expect(type, .lengthDelimited, field: "Summary.value")
      var valueReader = ProtobufReader(try reader.lengthDelimited())
      var tag = ""
      var simpleValue: Float?
      while let (field, type) = try valueReader.nextKey() {
        switch field {
        case ValueField.tag:
          try valueReader.expect(type, .lengthDelimited, field: "Summary.Value.tag")
          tag = try valueReader.string()
        case ValueField.simpleValue:
          try valueReader.expect(type, .fixed32, field: "Summary.Value.simple_value")
          simpleValue = Float(bitPattern: try valueReader.fixed32())
        default:
          try valueReader.skip(type)
        }
      }
      if let simpleValue { scalars.append(TensorBoardScalar(tag: tag, value: simpleValue)) }
    }
    return scalars
  }

  private static func status(inSessionLog data: ArraySlice<UInt8>) throws -> SessionLogStatus {
    var status = SessionLogStatus(rawValue: 0)  // proto3 leaves a zero status unwritten
    var reader = ProtobufReader(data)
    while let (field, type) = try reader.nextKey() {
      if field == SessionLogField.status {
        try reader.expect(type, .varint, field: "SessionLog.status")
        status = SessionLogStatus(rawValue: Int(Int32(truncatingIfNeeded: try reader.varint())))
      } else {
        try reader.skip(type)
      }
    }
    return status
  }
}

// MARK: - Field numbers and encoding

enum EventField {
  static let wallTime = 1
  static let step = 2
  static let fileVersion = 3
  static let summary = 5
  static let sessionLog = 7
}

enum SummaryField { static let value = 1 }

enum ValueField {
  static let tag = 1
  static let simpleValue = 2
}

enum SessionLogField { static let status = 1 }

extension ProtobufEncoder {
  /// The fields every event starts with; a zero step is left out, as proto3 encoders do.
  mutating func event(wallTime: Double, step: Int) {
    double(EventField.wallTime, wallTime)
    if step != 0 { int64(EventField.step, Int64(step)) }
  }

  /// A Summary of simple_value entries, in the order given. Each value is written even when zero:
  /// it is a oneof member, and its presence is what marks the entry as a scalar.
  mutating func summary(_ values: some Sequence<(String, Float)>) {
    message(EventField.summary) { summary in
      for (tag, value) in values {
        summary.message(SummaryField.value) { entry in
          entry.string(ValueField.tag, tag)
          entry.float(ValueField.simpleValue, value)
        }
      }
    }
  }

  mutating func sessionLog(_ status: SessionLogStatus) {
    message(EventField.sessionLog) { log in
      if status.rawValue != 0 { log.int64(SessionLogField.status, Int64(status.rawValue)) }
    }
  }
}
