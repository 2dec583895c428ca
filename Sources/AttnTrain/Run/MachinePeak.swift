// The peak that MFU divides by: the measured FLOPs per second of one core (PeakFLOPs) times the
// cores the job computes on. The probe runs at every start (about 0.1 s) and the figure is cached per
// machine (CPU model and vector width) as the best ever measured, so a start on a busy machine
// cannot lower it: a peak measured low would flatter MFU.
//
// Cores in use: on each node, its ranks' threads up to the node's cores (4 ranks of 1 thread on 2
// cores use 2); nodes are assumed alike. Two hardware threads of one core count as two cores, which
// understates MFU there.

import AttnCore
import AttnFormats
import Foundation

public struct MachinePeak: Sendable {
  public let perCore: Double
  public let cores: Int
  /// Where perCore came from, for the start-up line.
  public let source: String
  public var flopsPerSecond: Double { perCore * Double(cores) }

  /// Where the per-core figure comes from: `perCore` when given (ATTN_TRAIN_PEAK_FLOPS_PER_CORE, for
  /// a machine whose peak is known or for tests), else the probe and `cacheFile`.
  public struct Source: Sendable {
    public var cacheFile: String?
    public var perCore: Double?
    public static let probeOnly = Source(cacheFile: nil, perCore: nil)

    public init(cacheFile: String?, perCore: Double?) {
      self.cacheFile = cacheFile
      self.perCore = perCore
    }
  }

  public init(perCore: Double, cores: Int, source: String) {
    self.perCore = perCore
    self.cores = cores
    self.source = source
  }

  /// Measures (or takes) the per-core peak and counts the job's cores.
  public init(_ source: Source, threadsPerRank: Int, ranks: Int, ranksOnThisNode: Int, coresOnThisNode: Int) {
    let nodes = (ranks + ranksOnThisNode - 1) / max(ranksOnThisNode, 1)
    cores = nodes * min(ranksOnThisNode * threadsPerRank, coresOnThisNode)
    if let given = source.perCore {
      (perCore, self.source) = (given, "ATTN_TRAIN_PEAK_FLOPS_PER_CORE")
      return
    }
    let measured = PeakFLOPs.measurePerCore()
    guard let cacheFile = source.cacheFile else {
      (perCore, self.source) = (measured, "measured now")
      return
    }
    let key = "\(Self.cpuModel) | \(PeakFLOPs.vectorWidth)-wide FMA"
    var cache = (try? Self.readCache(cacheFile)) ?? [:]
    let best = max(measured, cache[key] ?? 0)
    if best > cache[key] ?? 0 {
      cache[key] = best
      try? Self.writeCache(cache, to: cacheFile)
    }
    (perCore, self.source) = (best, "best measured on this machine, cached in \(cacheFile)")
  }

  /// "1 x 104.9 GFLOP/s per core (best measured ...), 2 cores: 209.8 GFLOP/s"
  public var line: String {
    String(
      format: "peak for MFU: %.1f GFLOP/s per core (%@) x %d cores = %.1f GFLOP/s", perCore / 1e9, source, cores,
      flopsPerSecond / 1e9)
  }

  static var cpuModel: String {
    guard let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
      let line = info.split(separator: "\n").first(where: { $0.hasPrefix("model name") }),
      let colon = line.firstIndex(of: ":")
    else { return "unknown CPU" }
    return line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
  }

  private static func readCache(_ path: String) throws -> [String: Double] {
    let json = try JSONValue.parse(Data(contentsOf: URL(fileURLWithPath: path)))
    guard case .object(let members) = json else { return [:] }
    var cache: [String: Double] = [:]
    for (key, value) in members {
      switch value {
      case .number(let x) where x > 0: cache[key] = x
      case .integer(let text): if let x = Double(text), x > 0 { cache[key] = x }
      default: continue  // another version's entry, or damage: measured again
      }
    }
    return cache
  }

  private static func writeCache(_ cache: [String: Double], to path: String) throws {
    try FileManager.default.createDirectory(
      atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
    let json = JSONValue.object(cache.sorted { $0.key < $1.key }.map { (key: $0.key, value: JSONValue(number: $0.value)) })
    try replaceFileAtomically(path: path, contents: Data((json.description + "\n").utf8))
  }
}
