// The process's resident memory as the kernel counts it (/proc/self/status), for comparing what a
// run really holds with the MemoryPlan it printed. nil where /proc is not available.

import Foundation

public enum ResidentMemory {
  /// VmRSS: resident now.
  public static var currentBytes: Int? { read("VmRSS:") }
  /// VmHWM: the peak resident size so far.
  public static var peakBytes: Int? { read("VmHWM:") }

  private static func read(_ key: String) -> Int? {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
      let line = status.split(separator: "\n").first(where: { $0.hasPrefix(key) })
    else { return nil }
    let fields = line.split(separator: " ", omittingEmptySubsequences: true)
    guard fields.count >= 2, let kilobytes = Int(fields[1]) else { return nil }
    return kilobytes * 1024
  }
}
