// The test harness's own promises, since every end-to-end test leans on them: a child inherits no
// descriptor of the test process, a child past its time limit is killed with everything it started,
// and a descendant that escaped with the output pipe cannot make a test wait for ever.

import Foundation
import TestProcesses
import Testing

@Suite struct ChildProcessTests {
  @Test func aChildSeesOnlyStandardInputOutputAndError() throws {
    // Held open here while the child starts: a leak would show up as a descriptor of the child.
    let held = try FileHandle(forReadingFrom: URL(fileURLWithPath: "/dev/null"))
    defer { try? held.close() }
    let result = try ChildProcess.run(
      "/bin/sh", ["-c", "ls /proc/$$/fd; readlink /proc/$$/fd/0"], environment: [:], timeout: 30)
    #expect(result.status == 0, "\(result.output)")
    let lines = result.stdout.split(separator: "\n")
    #expect(lines.dropLast().sorted() == ["0", "1", "2"], "\(result.output)")
    #expect(lines.last == "/dev/null", "\(result.output)")
  }

  @Test func aChildPastItsLimitIsKilledWithItsDescendants() throws {
    let result = try ChildProcess.run(
      "/bin/sh", ["-c", "sleep 600 & echo $!; sleep 600"], environment: [:], timeout: 1)
    #expect(result.timedOut)
    #expect(result.status == 128 + SIGKILL)
    #expect(result.seconds < 15, "took \(result.seconds) s")
    #expect(result.output.contains("time limit"))
    let grandchild = try #require(pid_t(result.stdout.split(separator: "\n").first ?? ""), "\(result.output)")
    let deadline = Date().addingTimeInterval(5)
    while ProcessTree.isRunning(grandchild) && Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
    #expect(!ProcessTree.isRunning(grandchild), "the background sleep \(grandchild) outlived the timeout")
  }

  @Test func anEscapedDescendantHoldingTheOutputDoesNotStallTheWait() throws {
    // setsid puts the sleep out of reach of the tree kill's snapshot only once the shell has exited,
    // as an orphaned MPI rank would be; it keeps stdout and stderr open.
    let result = try ChildProcess.run(
      "/bin/sh", ["-c", "setsid sleep 30 & echo started"], environment: [:], timeout: 60)
    #expect(result.status == 0)
    #expect(result.stdout.contains("started"))
    #expect(result.seconds < 20, "waited \(result.seconds) s for a pipe an orphan held")
  }
}
