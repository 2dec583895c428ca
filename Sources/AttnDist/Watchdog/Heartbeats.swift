// How ranks learn what the others are doing when a collective does not complete: every rank's
// watchdog sends a small UDP datagram to every other rank twice a second, saying what it is doing
// (RankActivity) and how far its progress counter has moved. MPI cannot carry this: the ranks that
// would answer are the ones stuck in a collective, or stopped. A rank that stops (SIGSTOP, a hung
// read on the main thread) stops moving its counter; one that is gone stops sending.
//
// Addresses are exchanged through the communicator at start-up (each rank's IPv4 addresses and UDP
// port, rank by rank); datagrams carry the job's random tag, so a stray one from another job on the
// same host is ignored. Sending and receiving never block.

#if canImport(Glibc)
  import Glibc
#endif
import Foundation

struct Heartbeat: Equatable {
  static let size = 64
  static let magic: UInt32 = 0x4154_4842  // "ATHB"
  var job: UInt64
  var rank: Int
  var work: Activity
  var step: Int
  var collective: Activity?
  var collectiveSeconds: Double
  var progress: Int
  var stepSeconds: Double
  var computeSeconds: Double

  func encode(into bytes: UnsafeMutableRawBufferPointer) {
    var offset = 0
    func put<T: FixedWidthInteger>(_ value: T) {
      bytes.storeBytes(of: value.littleEndian, toByteOffset: offset, as: T.self)
      offset += MemoryLayout<T>.size
    }
    put(Self.magic)
    put(UInt32(rank))
    put(job)
    put(Int32(work.rawValue))
    put(Int32(collective?.rawValue ?? -1))
    put(Int64(step))
    put(Int64(progress))
    put(collectiveSeconds.bitPattern)
    put(stepSeconds.bitPattern)
    put(computeSeconds.bitPattern)
  }

  init(job: UInt64, rank: Int, _ snapshot: RankActivity.Snapshot) {
    self.job = job
    self.rank = rank
    work = snapshot.work
    step = snapshot.step
    collective = snapshot.collective
    collectiveSeconds = snapshot.collectiveSeconds
    progress = snapshot.progress
    stepSeconds = snapshot.stepSeconds
    computeSeconds = snapshot.computeSeconds
  }

  init?(decoding bytes: UnsafeRawBufferPointer) {
    guard bytes.count >= Self.size else { return nil }
    var offset = 0
    func get<T: FixedWidthInteger>(_: T.Type) -> T {
      defer { offset += MemoryLayout<T>.size }
      return T(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: T.self))
    }
    guard get(UInt32.self) == Self.magic else { return nil }
    rank = Int(get(UInt32.self))
    job = get(UInt64.self)
    work = Activity(rawValue: Int(get(Int32.self))) ?? .unknown
    let c = Int(get(Int32.self))
    collective = c < 0 ? nil : Activity(rawValue: c) ?? .unknown
    step = Int(get(Int64.self))
    progress = Int(get(Int64.self))
    collectiveSeconds = Double(bitPattern: get(UInt64.self))
    stepSeconds = Double(bitPattern: get(UInt64.self))
    computeSeconds = Double(bitPattern: get(UInt64.self))
  }
}

/// This rank's UDP socket and every peer's addresses.
final class HeartbeatChannel {
  private let socket: Int32
  let job: UInt64
  let rank: Int
  private var peers: [(rank: Int, addresses: [sockaddr_in])] = []

  /// Opens the socket and exchanges addresses with every rank (a collective: all ranks call it).
  init(communicator: Communicator) throws {
    rank = communicator.rank
    let socket = Glibc.socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
    self.socket = socket
    guard socket >= 0 else { throw WatchdogError.socket("socket(): \(String(cString: strerror(errno)))") }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = INADDR_ANY
    address.sin_port = 0
    let bound = withUnsafePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard bound == 0 else { throw WatchdogError.socket("bind(): \(String(cString: strerror(errno)))") }
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &address) {
      $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(socket, $0, &length) }
    }
    _ = fcntl(socket, F_SETFL, fcntl(socket, F_GETFL) | O_NONBLOCK)

    var tag = UInt64.random(in: 1...UInt64.max)
    try communicator.broadcast(&tag, root: 0)
    job = tag
    let mine = (Self.hostAddresses() + ["port \(UInt16(bigEndian: address.sin_port))"]).joined(separator: " ")
    for root in 0..<communicator.size {
      let theirs = try communicator.broadcast(mine, root: root)
      if root != rank { peers.append((root, Self.parse(theirs))) }
    }
  }

  deinit { close(socket) }

  func send(_ heartbeat: Heartbeat) {
    withUnsafeTemporaryAllocation(byteCount: Heartbeat.size, alignment: 8) { bytes in
      heartbeat.encode(into: bytes)
      for peer in peers {
        for var address in peer.addresses {
          _ = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
              sendto(socket, bytes.baseAddress, Heartbeat.size, Int32(MSG_DONTWAIT), $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
          }
        }
      }
    }
  }

  /// Every datagram waiting, this job's only.
  func receive() -> [Heartbeat] {
    var received: [Heartbeat] = []
    withUnsafeTemporaryAllocation(byteCount: 256, alignment: 8) { bytes in
      while true {
        let n = recv(socket, bytes.baseAddress, bytes.count, Int32(MSG_DONTWAIT))
        if n < 0 { break }
        if let beat = Heartbeat(decoding: UnsafeRawBufferPointer(rebasing: bytes[0..<n])), beat.job == job, beat.rank != rank {
          received.append(beat)
        }
      }
    }
    return received
  }

  /// The host's IPv4 addresses on interfaces that are up; loopback only when there is nothing else.
  static func hostAddresses() -> [String] {
    var list: UnsafeMutablePointer<ifaddrs>?
    guard getifaddrs(&list) == 0 else { return ["127.0.0.1"] }
    defer { freeifaddrs(list) }
    var addresses: [String] = []
    var cursor = list
    while let entry = cursor {
      defer { cursor = entry.pointee.ifa_next }
      guard let raw = entry.pointee.ifa_addr, raw.pointee.sa_family == sa_family_t(AF_INET),
        entry.pointee.ifa_flags & UInt32(IFF_UP) != 0, entry.pointee.ifa_flags & UInt32(IFF_LOOPBACK) == 0
      else { continue }
      var address = raw.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee.sin_addr }
      var text = [CChar](repeating: 0, count: Int(INET_ADDRSTRLEN))
      inet_ntop(AF_INET, &address, &text, socklen_t(INET_ADDRSTRLEN))
      addresses.append(String(cString: text))
    }
    return addresses.isEmpty ? ["127.0.0.1"] : addresses
  }

  /// "10.0.0.2 172.17.0.3 port 40512" → one sockaddr per address.
  static func parse(_ text: String) -> [sockaddr_in] {
    let words = text.split(separator: " ")
    guard let portIndex = words.firstIndex(of: "port"), portIndex + 1 < words.count, let port = UInt16(words[portIndex + 1]) else {
      return []
    }
    return words[..<portIndex].compactMap { word in
      var address = sockaddr_in()
      address.sin_family = sa_family_t(AF_INET)
      address.sin_port = port.bigEndian
      return inet_pton(AF_INET, String(word), &address.sin_addr) == 1 ? address : nil
    }
  }
}

public enum WatchdogError: Error, CustomStringConvertible {
  case socket(String)

  public var description: String {
    switch self {
    case .socket(let why): return "the collective watchdog could not open its heartbeat socket: \(why)"
    }
  }
}
