// Processes as /proc shows them, so tests find a job's MPI ranks and kill whole trees by pid, never
// by name (other jobs on the machine may run the same binary).

import Foundation

public enum ProcessTree {
  /// Every process below `root`, children before grandchildren.
  public static func descendants(of root: pid_t) -> [pid_t] {
    var children: [pid_t: [pid_t]] = [:]
    for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
      guard let pid = pid_t(entry), let fields = statFields(pid), fields.count > 1, let parent = pid_t(fields[1])
      else { continue }
      children[parent, default: []].append(pid)
    }
    var result: [pid_t] = []
    var queue = children[root] ?? []
    while !queue.isEmpty {
      let pid = queue.removeFirst()
      result.append(pid)
      queue += children[pid] ?? []
    }
    return result
  }

  /// Whether `pid` exists and is not a zombie.
  public static func isRunning(_ pid: pid_t) -> Bool {
    guard let state = statFields(pid)?.first else { return false }
    return state != "Z"
  }

  /// The process's environment as it was at exec.
  public static func environment(of pid: pid_t) -> [String: String] {
    guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/environ") else { return [:] }
    var result: [String: String] = [:]
    for entry in data.split(separator: 0) {
      let text = String(decoding: entry, as: UTF8.self)
      if let equals = text.firstIndex(of: "=") {
        result[String(text[..<equals])] = String(text[text.index(after: equals)...])
      }
    }
    return result
  }

  /// /proc/PID/stat after "pid (comm)": state, ppid, ... (comm may hold spaces, so split after the
  /// last ')').
  private static func statFields(_ pid: pid_t) -> [Substring]? {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
      let close = stat.lastIndex(of: ")")
    else { return nil }
    return stat[stat.index(after: close)...].split(separator: " ")
  }
}
