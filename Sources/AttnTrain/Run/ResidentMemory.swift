// The process's resident memory as the kernel counts it (/proc/self/status), for comparing what a
// run really holds with the MemoryPlan it printed. nil where /proc is not available.

import Foundation

public enum ResidentMemory {
  /// VmRSS: resident now.
  public static var currentBytes: Int? { read("VmRSS:") }
  /// VmHWM: the peak resident size so far.
  public static var peakBytes: Int? { read("VmHWM:") }

  /// What this node can still give: MemAvailable, or less when a cgroup (a container, a Slurm job)
  /// caps this process lower. nil where neither can be read.
  public static var availableBytes: Int? {
    let node = read("MemAvailable:", from: "/proc/meminfo")
    var limit: Int?
    if let max = try? String(contentsOfFile: "/sys/fs/cgroup/memory.max", encoding: .utf8),
      let cap = Int(max.trimmingCharacters(in: .whitespacesAndNewlines)),
      let used = (try? String(contentsOfFile: "/sys/fs/cgroup/memory.current", encoding: .utf8)).flatMap({
        Int($0.trimmingCharacters(in: .whitespacesAndNewlines))
      })
    {
      limit = cap - used
    }
    switch (node, limit) {
    case (let n?, let l?): return min(n, l)
    case (let n?, nil): return n
    case (nil, let l): return l
    }
  }

  private static func read(_ key: String, from file: String = "/proc/self/status") -> Int? {
    guard let status = try? String(contentsOfFile: file, encoding: .utf8),
      let line = status.split(separator: "\n").first(where: { $0.hasPrefix(key) })
    else { return nil }
    let fields = line.split(separator: " ", omittingEmptySubsequences: true)
    guard fields.count >= 2, let kilobytes = Int(fields[1]) else { return nil }
    return kilobytes * 1024
  }
}
