// What the MPI, resume and fault tests need beyond Harness: a job running in the background whose
// output can be watched line by line and which can be signalled; the pids of its ranks (read from
// /proc, so the tests never kill by name); a launcher that turns SIGTERM into the SIGUSR1 mpirun
// forwards; and small readers for a run directory. MPIEndToEnd is the one serialized parent suite:
// the machine has 2 cores, and jobs that overlap would slow each other past the tests' time limits.

import AttnTrain
import Foundation
import TestProcesses
import Testing

@Suite(.serialized) struct MPIEndToEnd {}

/// Jobs in the background, whose output can be watched line by line and which can be signalled.
enum BackgroundJob {
  static func start(_ executable: String, _ arguments: [String], environment: [String: String] = [:]) throws -> ChildProcess {
    try ChildProcess(executable, arguments, environment: Harness.cleanEnvironment(environment))
  }

  /// `mpirun -np N attn-train arguments` in the background.
  static func mpirun(_ ranks: Int, _ arguments: [String], environment: [String: String] = [:]) throws -> ChildProcess {
    try start(Harness.mpirunPath, Harness.mpirunArguments(ranks, arguments), environment: environment)
  }
}

enum MPIProcesses {
  /// The ranks below a launcher: its descendants whose environment carries OMPI_COMM_WORLD_RANK.
  static func ranks(under root: pid_t) -> [Int: pid_t] {
    var result: [Int: pid_t] = [:]
    for pid in ProcessTree.descendants(of: root) {
      if let rank = ProcessTree.environment(of: pid)["OMPI_COMM_WORLD_RANK"].flatMap(Int.init) { result[rank] = pid }
    }
    return result
  }
}

enum RunFiles {
  static func checkpoints(_ run: String) -> CheckpointDirectory { CheckpointDirectory(runDirectory: run) }

  static func latest(_ run: String) -> String? { checkpoints(run).latestName() }

  /// Names under <run>/checkpoints, sorted.
  static func entries(_ run: String) -> [String] {
    ((try? FileManager.default.contentsOfDirectory(atPath: checkpoints(run).root)) ?? []).sorted()
  }

  static func partials(_ run: String) -> [String] { entries(run).filter { $0.hasPrefix(".partial-") } }

  static func bytes(_ run: String, _ checkpoint: String, _ file: String) -> Data? {
    FileManager.default.contents(atPath: checkpoints(run).path(checkpoint) + "/" + file)
  }

  /// dev_loss by step from metrics.jsonl.
  static func devLosses(_ run: String) throws -> [Int: Double] {
    var result: [Int: Double] = [:]
    for record in try Harness.metrics(runDirectory: run) {
      if let step = record["step"], let loss = record["dev_loss"] { result[Int(step)] = loss }
    }
    return result
  }

  /// A copy of a run directory, so one checkpoint can be resumed several ways.
  static func copy(_ run: String, to destination: String) throws {
    try? FileManager.default.removeItem(atPath: destination)
    try FileManager.default.copyItem(atPath: run, toPath: destination)
  }

  /// The largest relative difference between two loss curves over `steps`; every step must exist.
  static func largestRelativeDifference(_ a: [Int: Double], _ b: [Int: Double], steps: ClosedRange<Int>) -> Double {
    var worst = 0.0
    for step in steps {
      guard let x = a[step], let y = b[step] else { return .infinity }
      worst = max(worst, abs(x - y) / max(abs(x), abs(y), 1e-12))
    }
    return worst
  }
}

/// The launcher recipe for stopping a job cleanly: mpirun cannot forward SIGTERM or SIGINT (it
/// answers them by killing the ranks a second later and exiting 1), but it forwards SIGUSR1, which
/// attn-train treats like SIGTERM. So the launcher runs mpirun in its own process group (`set -m`:
/// a terminal's Ctrl-C then reaches only the launcher; stdin from /dev/null, as a background group
/// must not read the terminal), turns its own SIGTERM/SIGINT into SIGUSR1 for mpirun, and exits
/// with mpirun's status. launch/mpirun.sh should carry the same lines.
/// launch/mpirun.sh: the launcher users run, which turns SIGTERM/SIGINT into SIGUSR1 for mpirun.
enum Launcher {
  static let script = Harness.repository.appendingPathComponent("launch/mpirun.sh").path
  /// The launcher runs the binary this test run built.
  static let environment = ["ATTN_TRAIN": Harness.binary]
}

/// Python's reference safetensors reader, for the test that checkpoints open outside Swift.
enum Python {
  static let canLoadSafetensors: Bool = (try? python3("import numpy, safetensors.numpy", [], timeout: 60)) != nil

  struct Tensor: Decodable {
    let shape: [Int]
    let dtype: String
    let sum: Double
  }

  /// Each file's tensors as `safetensors.numpy.load_file` sees them.
  static func loadSafetensors(_ files: [String]) throws -> [String: [String: Tensor]] {
    let script = """
      import json, sys
      from safetensors.numpy import load_file
      out = {}
      for path in sys.argv[1:]:
          out[path] = {name: {"shape": list(a.shape), "dtype": str(a.dtype), "sum": float(a.astype("float64").sum())}
                       for name, a in load_file(path).items()}
      print(json.dumps(out))
      """
    let out = try python3(script, files, timeout: 60)
    return try JSONDecoder().decode([String: [String: Tensor]].self, from: Data(out.utf8))
  }
}
