// SIGTERM (a cluster's pre-emption notice), SIGINT, SIGHUP (the ssh session that started the run
// closed) and SIGUSR1 ask training to stop after the
// current step, write a checkpoint and exit 0. A second SIGINT (Ctrl-C twice) exits at once; a
// repeated SIGTERM or SIGUSR1 changes nothing, because senders repeat them while the checkpoint is
// being written (Slurm signals every process of a job, and then mpirun signals the ranks again) and
// a sender that will not wait escalates to SIGKILL anyway.
// SIGUSR1 is there for mpirun (Open MPI 4.1, measured here): mpirun cannot forward SIGTERM or
// SIGINT (ess_base_forward_signals refuses them). On either it stops draining the ranks' output,
// sends them SIGCONT, waits odls_base_sigkill_timeout seconds (default 1), sends SIGTERM, waits
// again, sends SIGKILL, and exits 1 whatever the ranks did. SIGUSR1 it forwards to every rank at
// once and then waits for them, so a launcher that turns its own SIGTERM into SIGUSR1 for mpirun gets
// a final checkpoint and exit status 0 (see launch/).

import Foundation

nonisolated(unsafe) private var stopSignal: sig_atomic_t = 0

enum StopSignals {
  static let handled = [SIGTERM, SIGINT, SIGHUP, SIGUSR1]

  static func install() {
    let handler: @convention(c) (Int32) -> Void = { signal in
      if stopSignal != 0 {
        if signal == SIGINT { _exit(128 + signal) }
        return
      }
      stopSignal = signal
    }
    for number in handled { signal(number, handler) }
    // A closed pipe or terminal makes a write fail (RunLog ignores that) instead of killing the run.
    signal(SIGPIPE, SIG_IGN)
  }

  static var requested: Bool { stopSignal != 0 }

  /// "SIGTERM", for the log line that says why training stopped; nil if no signal came.
  static var received: String? {
    switch stopSignal {
    case 0: return nil
    case SIGTERM: return "SIGTERM"
    case SIGINT: return "SIGINT"
    case SIGUSR1: return "SIGUSR1"
    case SIGHUP: return "SIGHUP"
    default: return "signal \(stopSignal)"
    }
  }
}
