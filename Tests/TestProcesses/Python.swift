// python3 for tests that check our files against Python's own readers (hashlib, safetensors).

import Foundation

public struct PythonFailed: Error, CustomStringConvertible {
  public let description: String
}

/// stdout of `python3 -c script arguments...`; a non-zero exit, or a run past `timeout` seconds,
/// throws with the status and what Python printed.
public func python3(_ script: String, _ arguments: [String], timeout: Double = 120) throws -> String {
  let result = try ChildProcess.run(
    "/usr/bin/env", ["python3", "-c", script] + arguments, environment: ProcessInfo.processInfo.environment,
    timeout: timeout)
  guard result.status == 0 else { throw PythonFailed(description: "python3 exited \(result.status): \(result.output)") }
  return result.stdout
}
