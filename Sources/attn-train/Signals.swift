// SIGTERM (a cluster's pre-emption notice) and SIGINT ask training to stop after the current step,
// write a checkpoint and exit 0. A second signal exits at once.

import Foundation

nonisolated(unsafe) private var stopSignals: sig_atomic_t = 0

enum StopSignals {
  static func install() {
    let handler: @convention(c) (Int32) -> Void = { signal in
      if stopSignals > 0 { _exit(128 + signal) }
      stopSignals = 1
    }
    signal(SIGTERM, handler)
    signal(SIGINT, handler)
  }

  static var requested: Bool { stopSignals > 0 }
}
